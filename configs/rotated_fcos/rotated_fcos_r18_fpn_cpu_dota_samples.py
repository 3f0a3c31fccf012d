# A CPU-sized Rotated FCOS for the DOTA sample scenes: ResNet-18 from scratch, 64-wide FPN and
# head (GroupNorm of 32 groups), 512x512 patches, AdamW, 100 iterations. Data preparation:
# configs/_base_/datasets/dota_v1_samples_cpu.py. Anchor-free: no rotated-IoU assignment, so it
# is cheaper on the CPU than the RetinaNet one.
_base_ = [
    '../_base_/models/rotated_fcos_r50_fpn.py', '../_base_/datasets/dota_v1_samples_cpu.py',
    '../_base_/schedules/schedule_det_cpu_100i.py', '../_base_/default_runtime_det.py'
]
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64, stacked_convs=2),
    test_cfg=dict(nms_pre=500, max_per_img=300))
log_processor = dict(by_epoch=False, window_size=10)  # the schedule counts iterations
