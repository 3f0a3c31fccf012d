# WHU-RS19 (WHURS19Dataset): Dai & Yang 2010. 1,005 RGB 600x600 JPEGs, 19 classes of ~50.
# data_root: the extracted WHU-RS19 folder (<Class>/<image>.jpg).
# Preprocessing, loader and evaluator: scene_cls_default.py (open_clip's preprocess_val).
_base_ = ['./scene_cls_default.py']
dataset_type = 'WHURS19Dataset'
data_root = 'data/WHU-RS19'
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = test_dataloader
