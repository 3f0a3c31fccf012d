# LEVIR-CD+ (Shen et al., 2021): 985 pairs of 1024x1024 Google Earth tiles (637 train, 348 test),
# 0.5 m, building changes; the LEVIR-CD extension ChangeMamba reports on. Layout expected under
# data_root: {train,test}/{A,B,label}/*.png, labels 0/255 (mmrs.datasets.LEVIRCDPlusDataset).
# The release has no validation split: val and test both read 'test', as the official scripts.
# Training draws random 256x256 crops from the 1024 tiles; evaluation runs on whole tiles.
_base_ = ['./levir_cd.py']
dataset_type = 'LEVIRCDPlusDataset'
data_root = 'data/LEVIR-CD+'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split='train'))
val_dataloader = dict(
    batch_size=1, dataset=dict(type=dataset_type, data_root=data_root, split='test'))
test_dataloader = val_dataloader
