# MambaBCD-Tiny on LEVIR-CD, 256x256 crops, 20k iterations of batch 16, with the official
# recipe of ChangeMamba's changedetection/script/train_MambaBCD.py: AdamW lr 1e-4, weight decay
# 5e-4 (the script's default), constant learning rate (no param_scheduler), CE + 0.75 * Lovasz loss,
# random crop + independent horizontal / vertical flips (p=0.5) + a random 90/180/270 rotation,
# ImageNet normalisation. 20k iterations = the README's --max_iters 320000 samples / batch 16
# (the official loader draws max_iters samples once). The official run evaluates every 500
# iterations and keeps the best checkpoint; so does this config (by F1).
_base_ = [
    '../_base_/models/mambabcd.py', '../_base_/datasets/levir_cd.py',
    '../_base_/default_runtime.py'
]
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomCrop', crop_size=crop_size),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PairedRandomFlip', prob=0.5, direction='vertical'),
    dict(type='PairedRandomRotate90', prob=1.0),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1)
test_dataloader = dict(batch_size=1)

optimizer = dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500,
                    save_best='f1', rule='greater', max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='ChangeVisualizationHook'))
