# WHU-RS19 (WHURS19Dataset): Dai & Yang 2010. 1,005 RGB 600x600 JPEGs, 19 classes of ~50.
# data_root: the extracted WHU-RS19 folder (<Class>/<image>.jpg).
# Test-time preprocessing is open_clip's preprocess_val, as the RemoteCLIP (ITRA), GeoRSCLIP
# (RS5M inference_tool.py) and SkyScript / FarSLIP evaluation scripts use it: shortest side to
# 224 (bicubic), centre crop 224; normalisation happens in the CLIP data preprocessor. Class
# indices follow the sorted folder names; prompt strings are the dataset's display_names
# (mmrs.datasets.scene_classification). Zero-shot papers evaluate on the whole set (GeoRSCLIP)
# or on the last 20% of each class (RemoteCLIP/ITRA: split_ratio=0.8, split='test').
dataset_type = 'WHURS19Dataset'
data_root = 'data/WHU-RS19'
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
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='ZeroShotAccuracy', topk=(1, 5))
val_evaluator = test_evaluator
