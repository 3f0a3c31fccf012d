# PatternNet (PatternNetDataset): Zhou et al., ISPRS J. 2018. 30,400 RGB 256x256 JPEGs,
# 38 classes x 800. data_root: the extracted PatternNet folder (images/<class>/<image>.jpg).
# Preprocessing, loader and evaluator: scene_cls_default.py (open_clip's preprocess_val).
_base_ = ['./scene_cls_default.py']
dataset_type = 'PatternNetDataset'
data_root = 'data/PatternNet'
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = test_dataloader
