# Rotated FCOS, ResNet-50 FPN, HRSC2016 (800x512, 1 class, random rotation), le90, 72 epochs
# (the HRSC2016 schedule of mmrotate's Rotated RetinaNet config).
_base_ = [
    '../_base_/models/rotated_fcos_r50_fpn.py', '../_base_/datasets/hrsc2016.py',
    '../_base_/schedules/schedule_det_6x.py', '../_base_/default_runtime_det.py'
]
model = dict(bbox_head=dict(num_classes=1))
