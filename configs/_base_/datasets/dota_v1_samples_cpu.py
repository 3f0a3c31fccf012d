# The DOTA sample scenes as 512x512 patches, for CPU runs (an overfitting check: train and
# validation read the same patches). Prepare them (benchmarks/dota_samples_fit.py does this in
# a temporary folder, and adds mmrotate's two sample crops):
#
#   python tools/data/dota/split.py --img-dir ../shared/data/dota_samples/example/images \
#       --ann-dir ../shared/data/dota_samples/example/labelTxt \
#       --out-dir data/dota_samples_512 --subsize 512 --gap 100
#
# then point the config at them with ``tools/train.py CONFIG --data-root data/dota_samples_512``.
_base_ = ['./dota_v1.py']
data_root = 'data/dota_samples_512/'
_img_scale = (512, 512)
train_pipeline = [
    dict(type='mmdet.LoadImageFromFile'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='mmrotate.ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    dict(type='mmdet.Resize', scale=_img_scale, keep_ratio=True),
    dict(type='mmdet.RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='mmdet.PackDetInputs')
]
val_pipeline = [
    dict(type='mmdet.LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=_img_scale, keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
_samples = dict(img_path='images/', ann_path='labelTxt/')
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, data_prefix=_samples, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, data_prefix=_samples, pipeline=val_pipeline))
test_dataloader = val_dataloader
