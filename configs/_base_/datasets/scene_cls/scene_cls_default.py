# What every scene-classification test set here shares; a data set's file inherits it and sets
# only its dataset type and data_root (merged into test_dataloader.dataset).
# Test-time preprocessing is open_clip's preprocess_val, as the RemoteCLIP (ITRA), GeoRSCLIP
# (RS5M inference_tool.py) and SkyScript / FarSLIP evaluation scripts use it: shortest side to
# 224 (bicubic), centre crop 224; normalisation happens in the CLIP data preprocessor. Class
# indices follow the sorted folder names; prompt strings are the dataset's display_names
# (mmrs.datasets.scene_classification). Zero-shot papers evaluate on the whole set (GeoRSCLIP)
# or on the last 20% of each class (RemoteCLIP/ITRA: split_ratio=0.8, split='test').
img_size = 224
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='mmpretrain.PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='ZeroShotAccuracy', topk=(1, 5))
val_evaluator = test_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
