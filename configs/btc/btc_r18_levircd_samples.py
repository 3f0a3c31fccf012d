# BTC-style ResNet-18 baseline on the real LEVIR-CD sample folder (11 valid 256x256 pairs in
# A/ B/ label/, the invalid pair test_113_0256 excluded by the pair list). Used by the tests to
# show the model overfits real data; point it elsewhere with
#   --data-root /path/to/levir_cd_samples   (tools/train.py, tools/test.py, browse_dataset.py)
_base_ = [
    '../_base_/models/btc_r18_upernet.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_adamw_40k.py', '../_base_/datasets/levir_cd_samples.py']
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PairedRandomRotate90', prob=0.5),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
optimizer = dict(lr=1e-3)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=300)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=100, save_best='f1', rule='greater', max_keep_ckpts=1))
