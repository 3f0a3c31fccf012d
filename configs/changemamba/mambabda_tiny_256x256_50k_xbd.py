# MambaBDA-Tiny on xBD, 256x256 crops, 50k iterations of batch 16, with the official recipe of
# ChangeMamba's changedetection/script/train_MambaBDA.py and README: AdamW lr 1e-4, weight decay
# 5e-3 (the script's default), constant learning rate, the official loss (see
# configs/_base_/models/mambabda.py), the xBD pipeline of configs/_base_/datasets/xbd.py
# (random crop avoiding near-uniform crops, flips, a random quarter turn, damage background
# ignored), ImageNet normalisation. 50k iterations = the README's --max_iters 800000 samples /
# batch 16. The official run evaluates every 750 iterations on full tiles and keeps the best
# overall F1 of its evaluation (0.3 localisation F1 + 0.7 harmonic mean of the 4 damage F1s),
# XView2Metric's mambacd/oa_f1 (the xView2 scorer's 'score' is reported too).
_base_ = [
    '../_base_/models/mambabda.py', '../_base_/datasets/xbd.py',
    '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=16)

optimizer = dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-3)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=50000, val_interval=750)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=750,
                    save_best='mambacd/oa_f1', rule='greater', max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='ChangeVisualizationHook'))
