# AID (AIDDataset): Xia et al., TGRS 2017. 10,000 RGB 600x600 JPEGs, 30 classes of 220-420.
# data_root: the extracted AID folder (<Class>/<class>_<n>.jpg).
# Preprocessing, loader and evaluator: scene_cls_default.py (open_clip's preprocess_val).
_base_ = ['./scene_cls_default.py']
dataset_type = 'AIDDataset'
data_root = 'data/AID'
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = test_dataloader
