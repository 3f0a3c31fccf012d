# BTC-style ResNet-18 baseline on the real LEVIR-CD sample folder (11 valid 256x256 pairs in
# A/ B/ label/, the invalid pair test_113_0256 excluded by the pair list). Used by the tests to
# show the model overfits real data; point it elsewhere with
#   --data-root /path/to/levir_cd_samples   (tools/train.py, tools/test.py, browse_dataset.py)
_base_ = [
    '../_base_/models/btc_r18_upernet.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_adamw_40k.py'
]
data_root = '../shared/data/levir_cd_samples'
pair_list = '{{ fileDirname }}/levir_cd_samples_pairs.txt'
samples = dict(
    type='LEVIRCDDataset',
    data_root=data_root,
    data_prefix=dict(img_path_from='A', img_path_to='B', seg_map_path='label'),
    ann_file=pair_list)
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PairedRandomRotate90', prob=0.5),
    dict(type='PackChangeInputs'),
]
test_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**samples, pipeline=train_pipeline))
# "train F1": the same pairs without augmentation, to watch the model fit real data.
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**samples, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ChangeMetric')
test_evaluator = val_evaluator
optimizer = dict(lr=1e-3)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=300)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=100, save_best='f1', rule='greater', max_keep_ckpts=1))
