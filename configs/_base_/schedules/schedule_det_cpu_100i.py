# A short CPU schedule for from-scratch runs on the sample data: 100 iterations, AdamW 1e-3,
# 30-iteration warm-up then cosine decay, validation and a checkpoint at the end. Keeps
# schedule_det_1x.py's gradient clipping and mmrs.LossCheckHook.
_base_ = ['./schedule_det_1x.py']
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=100, val_interval=100)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=100, eta_min=1e-5)
]
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=1))
