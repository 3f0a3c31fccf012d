# Contrastive fine-tuning of a pretrained CLIP on image-caption pairs (RSICD / RSITMD / UCM).
# AdamW with open_clip_train's betas and eps for ViTs (beta2 0.98, eps 1e-6) and its
# weight-decay exclusions (main.py: parameters with ndim < 2 -- gains, biases, class
# embedding -- and logit_scale get none); a pretrained model wants a small learning rate and
# short warm-up. These are sensible defaults, not a reproduced paper recipe: the families'
# papers do not publish one fine-tuning schedule per dataset.
max_epochs = 10
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2),
    paramwise_cfg=dict(flat_decay_mult=0.0, custom_keys={'logit_scale': dict(decay_mult=0.0)}),
    clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
# (val_cfg / test_cfg come with the evaluation configs this schedule is combined with)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    save_best='retrieval/A/mean_recall', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
# The global batch (all ranks together) sets the number of negatives of the contrastive loss;
# `--cfg-options auto_scale_lr.enable=True` scales the learning rate with it.
auto_scale_lr = dict(enable=False, base_batch_size=256)
