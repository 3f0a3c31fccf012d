# Oriented R-CNN, ResNet-50 FPN, DIOR-R (800x800, 20 classes), le90, 12 epochs. mmrotate reports
# DIOR-R only for Rotated RetinaNet; no reference number for this one.
_base_ = [
    '../_base_/models/oriented_rcnn_r50_fpn.py', '../_base_/datasets/dior_r.py',
    '../_base_/schedules/schedule_det_1x.py', '../_base_/default_runtime_det.py'
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))
optim_wrapper = dict(optimizer=dict(lr=0.005))  # 2 images a batch, as the DOTA config
