# 72 epochs ("6x"), decay at epochs 48 and 66: mmrotate's HRSC2016 schedule (small dataset).
# Same SGD, warm-up, gradient clipping and loss check as schedule_det_1x.py.
_base_ = ['./schedule_det_1x.py']
train_cfg = dict(max_epochs=72)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=72, by_epoch=True, milestones=[48, 66], gamma=0.1)
]
