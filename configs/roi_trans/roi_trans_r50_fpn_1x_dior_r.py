# RoI Transformer, ResNet-50 FPN, DIOR-R (800x800, 20 classes), le90, 12 epochs. mmrotate reports DIOR-R for Rotated
# RetinaNet only; no reference number for this one.
# The cascade's bbox_head is a list, which a child config replaces whole: both stages are
# restated from configs/_base_/models/roi_trans_r50_fpn.py with num_classes=20.
_base_ = [
    '../_base_/models/roi_trans_r50_fpn.py', '../_base_/datasets/dior_r.py',
    '../_base_/schedules/schedule_det_1x.py', '../_base_/default_runtime_det.py'
]
model = dict(
    roi_head=dict(
        bbox_head=[
            # stage 1: horizontal RoI -> rotated box
            dict(
                type='mmdet.Shared2FCBBoxHead', predict_box_type='rbox', in_channels=256,
                fc_out_channels=1024, roi_feat_size=7, num_classes=20,
                reg_predictor_cfg=dict(type='mmdet.Linear'),
                cls_predictor_cfg=dict(type='mmdet.Linear'),
                bbox_coder=dict(
                    type='mmrotate.DeltaXYWHTHBBoxCoder', angle_version='le90',
                    norm_factor=2, edge_swap=True, target_means=(0.0, 0.0, 0.0, 0.0, 0.0),
                    target_stds=(0.1, 0.1, 0.2, 0.2, 0.1), use_box_type=True),
                reg_class_agnostic=True,
                loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=1.0)),
            # stage 2: rotated RoI -> refined rotated box
            dict(
                type='mmdet.Shared2FCBBoxHead', predict_box_type='rbox', in_channels=256,
                fc_out_channels=1024, roi_feat_size=7, num_classes=20,
                reg_predictor_cfg=dict(type='mmdet.Linear'),
                cls_predictor_cfg=dict(type='mmdet.Linear'),
                bbox_coder=dict(
                    type='mmrotate.DeltaXYWHTRBBoxCoder', angle_version='le90',
                    norm_factor=None, edge_swap=True, proj_xy=True,
                    target_means=(0.0, 0.0, 0.0, 0.0, 0.0),
                    target_stds=(0.05, 0.05, 0.1, 0.1, 0.05)),
                reg_class_agnostic=False,
                loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=1.0)),
        ]))
optim_wrapper = dict(optimizer=dict(lr=0.005))  # 2 images a batch, as the DOTA config
