# MambaSCD-Tiny on SECOND, 256x256 crops, 50k iterations of batch 16, with the official recipe
# of ChangeMamba's changedetection/script/train_MambaSCD.py and README: AdamW lr 1e-4, weight
# decay 5e-4 (the script's default), StepLR halving the learning rate every 10k iterations,
# the official total loss (see configs/_base_/models/mambascd.py), random crop + independent
# horizontal / vertical flips (p=0.5) + a random 90/180/270 rotation (no photometric
# augmentation, no time exchange), ImageNet normalisation. 50k iterations = the README's
# --max_iters 800000 samples / batch 16 (the official loader draws max_iters samples once).
# The official run evaluates every 500 iterations on the SECOND test split and keeps the best
# SeK of its from-to (37-class) matrix, i.e. SCDMetric's mambacd/SeK.
_base_ = [
    '../_base_/models/mambascd.py', '../_base_/datasets/second.py',
    '../_base_/default_runtime.py'
]
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
val_dataloader = dict(batch_size=1)
test_dataloader = dict(batch_size=1)
val_evaluator = dict(type='SCDMetric', num_semantic_classes=7)
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
