# Rotated RetinaNet, ResNet-50 FPN, DOTA-v1.0 single-scale 1024/200 patches, le90, 12 epochs,
# 2 images a batch (mmrotate: 68.42 mAP on the DOTA-v1.0 test server).
_base_ = [
    '../_base_/models/rotated_retinanet_r50_fpn.py', '../_base_/datasets/dota_v1.py',
    '../_base_/schedules/schedule_det_1x.py', '../_base_/default_runtime_det.py'
]
