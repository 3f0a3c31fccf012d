# ChangeViT's official schedule (github.com/zhuduowang/ChangeViT, main.py and
# model/utils.py adjust_learning_rate; README: --max_steps 80000 --batch_size 16 --lr 2e-4):
# Adam (L2 weight decay, not AdamW) lr 2e-4, betas (0.9, 0.99), eps 1e-8, weight decay 1e-4;
# 200 iterations of linear warm-up, then poly decay (1 - it / 80000)^0.9. Here both act during
# the warm-up: their product is at most 0.23 % below the official warm-up. The official
# evaluates after every epoch and keeps the best F1; here every 1000 iterations.
max_iters = 80000
optimizer = dict(type='Adam', lr=2e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    # mmengine's LinearLR factor is start + (1 - start) * it / (end - begin - 1): with end=200
    # it equals the official 0.1 + 0.9 (it + 1) / 200 at every warm-up iteration (checked).
    dict(type='LinearLR', start_factor=0.1045, by_epoch=False, begin=0, end=200),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000,
                    save_best='f1', rule='greater', max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='ChangeVisualizationHook'))
