# Rotated FCOS, ResNet-50 FPN, DOTA-v1.0 single-scale 1024/200 patches, le90, rotated IoU loss,
# 12 epochs, 2 images a batch (mmrotate: 71.28 mAP on the DOTA-v1.0 test server).
_base_ = [
    '../_base_/models/rotated_fcos_r50_fpn.py', '../_base_/datasets/dota_v1.py',
    '../_base_/schedules/schedule_det_1x.py', '../_base_/default_runtime_det.py'
]
