# RSICD (RSICDDataset): Lu et al., TGRS 2017. 10,921 images (224x224 jpg), 5 sentences each
# (many repeated), splits train/val/test (8,734 train). Layout expected under data_root (as
# distributed): dataset_rsicd.json (Karpathy-style caption JSON) and RSICD_images/ with the
# images. Pipelines, loaders and RetrievalMetric: retrieval_default.py.
_base_ = ['./retrieval_default.py']
dataset_type = 'RSICDDataset'
data_root = 'data/RSICD'
train_dataloader = val_dataloader = test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
