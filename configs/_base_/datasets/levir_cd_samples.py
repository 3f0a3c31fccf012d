# The real LEVIR-CD sample folder (../shared/data/levir_cd_samples: 11 valid 256x256 pairs in
# A/ B/ label/, the invalid pair test_113_0256 excluded by the pair list), for CPU evidence runs:
# train on the pairs, and score the same pairs without augmentation ("train F1", to watch a
# model fit real data). Point it elsewhere with --data-root DIR (tools/train.py, tools/test.py).
# Method configs set their own train pipeline and batch size:
#   train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
data_root = '../shared/data/levir_cd_samples'
pair_list = '{{ fileDirname }}/../../btc/levir_cd_samples_pairs.txt'
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
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**samples, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ChangeMetric')
test_evaluator = val_evaluator
