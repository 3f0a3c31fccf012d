# The embedded default behind `make demo`: FC-Siam-diff trained from scratch on the CPU on
# synthetic 128x128 GeoTIFF pairs (generated on first use into data/synthetic_demo). Changes
# are buildings/roads/vegetation appearing or vanishing; illumination and season shifts between
# the dates are not change, so a pixel-difference threshold does not solve it.
_base_ = [
    '../_base_/models/fc_siam_diff.py', '../_base_/datasets/synthetic.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_40k.py'
]
data_root = 'data/synthetic_demo'
synthetic = dict(data_root=data_root)
train_dataloader = dict(batch_size=8, dataset=synthetic)
val_dataloader = dict(dataset=synthetic)
test_dataloader = dict(dataset=synthetic)
# Per-band statistics of the synthetic scenes would be better; ImageNet's are fine here.
optimizer = dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=1e-4)
optim_wrapper = dict(optimizer=optimizer)
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, begin=50, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=200)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=200, save_best='f1', rule='greater', max_keep_ckpts=1))
