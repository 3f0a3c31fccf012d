# ChangeViT-T on the real LEVIR-CD sample folder (11 valid 256x256 pairs, the invalid pair
# test_113_0256 excluded by the pair list): evidence that the model, trained from random weights
# through tools/train.py on the CPU, fits real data (benchmarks/levir_samples_overfit.py
# --config configs/changevit/changevit_tiny_levircd_samples.py; numbers in README.md here).
# The official optimiser (Adam, betas (0.9, 0.99), weight decay 1e-4), BCE + Dice loss and
# flips + date exchange, with a constant learning rate of 3e-4 (no pretrained weights here,
# no warm-up / poly decay over a few hundred iterations) and 128x128 crops in batches of 2 so
# that it fits a CPU session.
_base_ = [
    '../_base_/models/changevit.py', '../_base_/datasets/levir_cd_samples.py',
    '../_base_/default_runtime.py'
]
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomCrop', crop_size=(128, 128)),
    dict(type='PairedRandomFlip', prob=0.5, direction='vertical'),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ExchangeTime', prob=0.5),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=3e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-4))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400, val_interval=100)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='ChangeVisualizationHook'))
