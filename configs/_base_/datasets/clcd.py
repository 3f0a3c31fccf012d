# CLCD (Liu et al., "A CNN-Transformer Network With Multiscale Context Aggregation for
# Fine-Grained Cropland Change Detection", IEEE JSTARS 2022; github.com/liumency/CropLand-CD):
# 600 pairs of 512x512 Gaofen-2 crops (0.5-2 m), cropland changes, split 360 / 120 / 120.
# Layout under data_root (the extracted CLCD folder): {train,val,test}/{time1,time2,label}/
# <name>.png, labels 0/255 (see mmrs.datasets.CLCDDataset).
dataset_type = 'CLCDDataset'
data_root = 'data/CLCD'
# Same pipelines and loaders as LEVIR-CD (256 crops, flips, rot90, photometric, exchange).
_base_ = ['./levir_cd.py']
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
