# A CPU-sized Oriented R-CNN for the DOTA sample scenes: ResNet-18 from scratch, 64-wide FPN,
# RPN and a 256-wide box head, 512x512 patches, fewer proposals (rotated RoIAlign and rotated
# NMS dominate the CPU time), AdamW, 100 iterations. Data preparation:
# configs/_base_/datasets/dota_v1_samples_cpu.py.
_base_ = [
    '../_base_/models/oriented_rcnn_r50_fpn.py', '../_base_/datasets/dota_v1_samples_cpu.py',
    '../_base_/schedules/schedule_det_cpu_100i.py', '../_base_/default_runtime_det.py'
]
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=500),
                   # rotated IoU only where proposal and object may overlap: same values
                   rcnn=dict(sampler=dict(num=256), assigner=dict(
                       iou_calculator=dict(type='SparseRBboxOverlaps2D')))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=500), rcnn=dict(max_per_img=300)))
log_processor = dict(by_epoch=False, window_size=10)  # the schedule counts iterations
