# MambaBCD-Base (92,399,874 parameters, as official) on LEVIR-CD+, the dataset the official
# ChangeMamba checkpoints were trained on (MambaBCD_Tiny_LEVIRCD+_F1_0.8803): the recipe of
# mambabcd_base_256x256_20k_levircd.py (random 256x256 crops of the 1024x1024 tiles) with the
# LEVIR-CD+ splits; validation and test read the test split (the release has no val split).
_base_ = ['./mambabcd_base_256x256_20k_levircd.py']
dataset_type = 'LEVIRCDPlusDataset'
data_root = 'data/LEVIR-CD+'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split='train'))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split='test'))
test_dataloader = val_dataloader
