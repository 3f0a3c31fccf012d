# Rotated FCOS, ResNet-50 FPN, DIOR-R (800x800, 20 classes), le90, 12 epochs. mmrotate reports
# DIOR-R only for Rotated RetinaNet; no reference number for this one.
_base_ = [
    '../_base_/models/rotated_fcos_r50_fpn.py', '../_base_/datasets/dior_r.py',
    '../_base_/schedules/schedule_det_1x.py', '../_base_/default_runtime_det.py'
]
model = dict(bbox_head=dict(num_classes=20))
