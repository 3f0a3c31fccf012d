# MambaBCD-Tiny on the real LEVIR-CD sample folder (11 valid 256x256 pairs, the invalid pair
# test_113_0256 excluded by the pair list): evidence that the model, trained from random weights
# through tools/train.py on the CPU, fits real data (benchmarks/levir_samples_overfit.py
# --config configs/changemamba/mambabcd_tiny_levircd_samples.py; numbers in README.md here).
# The official recipe's AdamW / CE + 0.75 Lovasz loss / flips + rot90, with a larger learning
# rate (3e-4) than the official 1e-4 because there is no ImageNet-pretrained encoder here, and
# 64x64 crops in batches of 2 so that the run fits in a (shared) 2-core CPU session; the
# "train F1" is measured on the whole 256x256 pairs every 20 iterations.
_base_ = [
    '../_base_/models/mambabcd.py', '../_base_/datasets/levir_cd_samples.py',
    '../_base_/default_runtime.py'
]
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomCrop', crop_size=(64, 64)),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PairedRandomFlip', prob=0.5, direction='vertical'),
    dict(type='PairedRandomRotate90', prob=0.5),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.999), weight_decay=5e-4))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80, val_interval=20)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=80, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='ChangeVisualizationHook'))
