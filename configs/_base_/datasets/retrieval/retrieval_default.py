# What every image-caption retrieval set here shares; a data set's file inherits it and sets only
# its dataset type and data_root (merged into the three dataloaders' datasets), and the split a
# set validates on where it has no 'val'.
# Training picks one random caption per image (RandomCaption); val/test pack all captions of
# each image for RetrievalMetric (protocols A and B, see docs/retrieval_protocols.md).
# Test-time preprocessing is open_clip's preprocess_val, as the RemoteCLIP / SkyScript / FarSLIP
# evaluation scripts use it: shortest side to 224 (bicubic), centre crop 224; normalisation
# happens in the CLIP data preprocessor. test_pipeline leaves the captions as distributed
# (GeoRSCLIP's, RS-M-CLIP's evaluation); the two formatted variants are what a family's
# retrieval config (configs/clip/*_retrieval_*.py) selects to encode the text as its own
# evaluation does (FormatCaptions, docs/retrieval_protocols.md).
img_size = 224
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=img_size, crop_ratio_range=(0.9, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCaption'),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['text']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['captions', 'img_id']),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(split='train', pipeline=train_pipeline))
test_dataloader = dict(train_dataloader, sampler=dict(type='DefaultSampler', shuffle=False),
                       dataset=dict(split='test', pipeline=test_pipeline))
val_dataloader = dict(test_dataloader, dataset=dict(split='val', pipeline=test_pipeline))
# RemoteCLIP (ChenDelong1999/RemoteCLIP remoteclip_retrieval.py): text['raw'].capitalize()
capitalized_test_pipeline = [
    *test_pipeline[:-1], dict(type='FormatCaptions', capitalize=True), test_pipeline[-1]]
# SkyScript (cross_modal_retrieval.ipynb) and FarSLIP (tests/test_retrieval.py) prompt prefix
prefixed_test_pipeline = [
    *test_pipeline[:-1], dict(type='FormatCaptions', prefix='a satellite image. '),
    test_pipeline[-1]]
val_evaluator = dict(type='RetrievalMetric', protocols=('A', 'B'), ks=(1, 5, 10))
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
