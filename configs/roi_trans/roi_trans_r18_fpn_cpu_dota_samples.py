# A CPU-sized RoI Transformer for the DOTA sample scenes: ResNet-18 from scratch, 64-wide FPN,
# RPN and two 256-wide cascade box heads, 512x512 patches, fewer proposals and sampled RoIs
# (RoIAlign, rotated RoIAlign and rotated NMS dominate the CPU time), AdamW, 100 iterations.
# Data preparation: configs/_base_/datasets/dota_v1_samples_cpu.py.
_base_ = [
    '../_base_/models/roi_trans_r50_fpn.py', '../_base_/datasets/dota_v1_samples_cpu.py',
    '../_base_/schedules/schedule_det_cpu_100i.py', '../_base_/default_runtime_det.py'
]
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=[
            dict(type='mmdet.SingleRoIExtractor',
                 roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                 out_channels=64, featmap_strides=[4, 8, 16, 32]),
            dict(type='mmrotate.RotatedSingleRoIExtractor',
                 roi_layer=dict(type='RoIAlignRotated', out_size=7, sample_num=2,
                                clockwise=True),
                 out_channels=64, featmap_strides=[4, 8, 16, 32]),
        ],
        # lists replace the base's whole: both stages restated at 64/256 widths
        bbox_head=[
            dict(
                type='mmdet.Shared2FCBBoxHead', predict_box_type='rbox', in_channels=64,
                fc_out_channels=256, roi_feat_size=7, num_classes=15,
                reg_predictor_cfg=dict(type='mmdet.Linear'),
                cls_predictor_cfg=dict(type='mmdet.Linear'),
                bbox_coder=dict(
                    type='mmrotate.DeltaXYWHTHBBoxCoder', angle_version='le90',
                    norm_factor=2, edge_swap=True, target_means=(0.0, 0.0, 0.0, 0.0, 0.0),
                    target_stds=(0.1, 0.1, 0.2, 0.2, 0.1), use_box_type=True),
                reg_class_agnostic=True,
                loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=1.0)),
            dict(
                type='mmdet.Shared2FCBBoxHead', predict_box_type='rbox', in_channels=64,
                fc_out_channels=256, roi_feat_size=7, num_classes=15,
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
        ]),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=[
            dict(assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                               min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1,
                               iou_calculator=dict(type='mmrotate.RBbox2HBboxOverlaps2D')),
                 sampler=dict(type='mmdet.RandomSampler', num=256, pos_fraction=0.25,
                              neg_pos_ub=-1, add_gt_as_proposals=True),
                 pos_weight=-1, debug=False),
            dict(assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                               min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1,
                               iou_calculator=dict(type='SparseRBboxOverlaps2D')),
                 sampler=dict(type='mmdet.RandomSampler', num=256, pos_fraction=0.25,
                              neg_pos_ub=-1, add_gt_as_proposals=True),
                 pos_weight=-1, debug=False),
        ]),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=500), rcnn=dict(max_per_img=300)))
log_processor = dict(by_epoch=False, window_size=10)  # the schedule counts iterations
