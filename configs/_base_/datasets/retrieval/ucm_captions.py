# UCM-Captions (UCMCaptionsDataset): Qu et al., CITS 2016. 2,100 UC Merced images (256x256 tif),
# 5 sentences each, splits train/val/test (210 test images). Layout expected under data_root (as
# distributed): dataset.json (Karpathy-style caption JSON) and imgs/ with the images.
# Pipelines, loaders and RetrievalMetric: retrieval_default.py.
_base_ = ['./retrieval_default.py']
dataset_type = 'UCMCaptionsDataset'
data_root = 'data/UCM_captions'
train_dataloader = val_dataloader = test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
