# UC Merced Land Use (UCMercedDataset): Yang & Newsam, ACM GIS 2010. 2,100 RGB TIFFs of
# about 256x256, 21 classes x 100. data_root: the extracted UCMerced_LandUse folder
# (Images/<class>/<class>00.tif; 3-band 8-bit TIFFs, read by OpenCV like the JPEG sets).
# Preprocessing, loader and evaluator: scene_cls_default.py (open_clip's preprocess_val).
_base_ = ['./scene_cls_default.py']
dataset_type = 'UCMercedDataset'
data_root = 'data/UCMerced_LandUse'
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = test_dataloader
