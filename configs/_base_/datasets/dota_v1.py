# DOTA-v1.0, single scale: 1024x1024 patches with 200 px overlap (mmrotate's README setting),
# le90 rotated boxes. Prepare the patches from the raw release with mmrs's split tool (the
# official devkit's ImgSplit rules and patch names ``<id>__1__<x>___<y>``):
#
#   python tools/data/dota/split.py --img-dir data/DOTA/train/images \
#       --ann-dir data/DOTA/train/labelTxt --out-dir data/split_ss_dota/trainval --nproc 8
#   python tools/data/dota/split.py --img-dir data/DOTA/val/images \
#       --ann-dir data/DOTA/val/labelTxt --out-dir data/split_ss_dota/trainval --nproc 8
#   python tools/data/dota/split.py --img-dir data/DOTA/test/images \
#       --out-dir data/split_ss_dota/test --nproc 8
#
# (``--subsize 1024 --gap 200 --rates 1.0`` are the defaults.) Training uses every object,
# difficult ones too (as mmrotate); validation ignores difficult objects, as the devkit does.
# For the test server, predict on ``test/`` and merge the patches back with
# :mod:`mmrs.datasets.dota_merge`.
dataset_type = 'DOTARawDataset'
data_root = 'data/split_ss_dota/'
backend_args = None

train_pipeline = [
    dict(type='mmdet.LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='mmrotate.ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='mmdet.Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='mmdet.RandomFlip', prob=0.75,
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='mmdet.PackDetInputs')
]
# Ground truth is loaded after the resize so that it stays in original-image coordinates (the
# predictions are rescaled back) and kept as quadrilaterals: the devkit-exact metric compares
# polygons with the original quadrilaterals.
val_pipeline = [
    dict(type='mmdet.LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
test_pipeline = [
    dict(type='mmdet.LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=None,
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        version='v1.0',
        data_root=data_root,
        data_prefix=dict(img_path='trainval/images/', ann_path='trainval/labelTxt/'),
        diff_thr=100,
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        version='v1.0',
        data_root=data_root,
        data_prefix=dict(img_path='trainval/images/', ann_path='trainval/labelTxt/'),
        diff_thr=0,
        test_mode=True,
        pipeline=val_pipeline))
test_dataloader = val_dataloader

# Official DOTA Task1 numbers (VOC07 11-point AP, IoU > 0.5, difficult ignored); mode='mmrotate'
# reproduces mmrotate's DOTAMetric instead.
val_evaluator = dict(type='DOTADevkitMetric', metric='voc07', mode='devkit')
test_evaluator = val_evaluator
