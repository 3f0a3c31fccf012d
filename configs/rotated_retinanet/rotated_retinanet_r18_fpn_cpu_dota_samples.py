# A CPU-sized Rotated RetinaNet for the DOTA sample scenes: ResNet-18 from scratch (no weights
# can be downloaded), 64-wide FPN and head, 512x512 patches, AdamW, 100 iterations. It shows
# that the detector learns on the CPU (benchmarks/dota_samples_fit.py, README.md), not a useful
# mAP. Data preparation: configs/_base_/datasets/dota_v1_samples_cpu.py.
_base_ = [
    '../_base_/models/rotated_retinanet_r50_fpn.py', '../_base_/datasets/dota_v1_samples_cpu.py',
    '../_base_/schedules/schedule_det_cpu_100i.py', '../_base_/default_runtime_det.py'
]
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    # One square anchor a location (mmrotate: 3 scales x 3 ratios): 5.5k anchors for a
    # 512x512 input instead of 49k. With mmrotate's dense rotated IoU that was the CPU
    # bottleneck (~17 s an image); with SparseRBboxOverlaps2D below the 49k anchors cost
    # ~0.4-0.9 s an image (benchmarks/results/rotated_assign.json), one anchor ~0.06 s.
    bbox_head=dict(
        in_channels=64, feat_channels=64, stacked_convs=2,
        anchor_generator=dict(scales_per_octave=1, ratios=[1.0])),
    # rotated IoU only for the anchor/object pairs whose enclosing boxes meet: the same
    # assignment, ~20x faster on the CPU (mmrs.models.task_utils, benchmarks/rotated_assign.py)
    train_cfg=dict(assigner=dict(iou_calculator=dict(type='SparseRBboxOverlaps2D'))),
    test_cfg=dict(nms_pre=500, max_per_img=300))
log_processor = dict(by_epoch=False, window_size=10)  # the schedule counts iterations
