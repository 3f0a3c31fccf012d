# RSITMD (RSITMDDataset): Yuan et al., TGRS 2022 (xiaoyuan1996/AMFMN). 4,743 images (256x256
# tif), 5 sentences each, splits train/test (no val: validation reads test). Layout expected
# under data_root (as distributed): dataset_RSITMD.json (Karpathy-style caption JSON) and
# images/ with the images. Pipelines, loaders and RetrievalMetric: retrieval_default.py.
_base_ = ['./retrieval_default.py']
dataset_type = 'RSITMDDataset'
data_root = 'data/RSITMD'
train_dataloader = test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split='test'))
