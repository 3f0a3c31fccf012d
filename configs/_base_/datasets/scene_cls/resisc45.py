# NWPU-RESISC45 (RESISC45Dataset): Cheng, Han & Lu, Proc. IEEE 2017. 31,500 RGB 256x256 JPEGs,
# 45 classes x 700. data_root: the extracted NWPU-RESISC45 folder (<class>/<class>_001.jpg).
# torchgeo's split lists work as ann_file (e.g. ann_file='resisc45-test.txt').
# Preprocessing, loader and evaluator: scene_cls_default.py (open_clip's preprocess_val).
_base_ = ['./scene_cls_default.py']
dataset_type = 'RESISC45Dataset'
data_root = 'data/NWPU-RESISC45'
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = test_dataloader
