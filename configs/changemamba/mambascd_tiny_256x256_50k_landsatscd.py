# MambaSCD-Tiny on Landsat-SCD with the SECOND recipe of ChangeMamba's train_MambaSCD.py (the
# official code only trains SECOND): AdamW lr 1e-4, weight decay 5e-4, StepLR halving every 10k
# iterations, 50k iterations of batch 16, 256x256 crops, flips + a random quarter turn, the
# official total loss. Landsat-SCD has 4 land-cover classes, so the semantic heads have 5
# outputs ("no change" + 4): 37,125,383 parameters (SECOND's model minus 2 classifier rows).
# Validation on the val split every 500 iterations, best mambacd/SeK kept.
_base_ = [
    '../_base_/models/mambascd.py', '../_base_/datasets/landsat_scd.py',
    '../_base_/default_runtime.py'
]
model = dict(semantic_head=dict(num_classes=5))
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations', semantic=True),
    dict(type='PairedRandomCrop', crop_size=crop_size),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PairedRandomFlip', prob=0.5, direction='vertical'),
    dict(type='PairedRandomRotate90', prob=1.0),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(type='SCDMetric', num_semantic_classes=5)
test_evaluator = val_evaluator

optimizer = dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [dict(type='StepLR', step_size=10000, gamma=0.5, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=50000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500,
                    save_best='mambacd/SeK', rule='greater', max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='ChangeVisualizationHook'))
