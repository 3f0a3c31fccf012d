# EuroSAT RGB (EuroSATDataset, variant='rgb'): Helber et al., JSTARS 2019. 27,000 Sentinel-2
# 64x64 JPEGs, 10 classes. data_root: the folder EuroSAT.zip was extracted into
# (2750/<Class>/<Class>_<n>.jpg). Class prompts are OpenAI CLIP's descriptive names
# ('annual crop land', 'brushland or shrubland', ...). torchgeo's eurosat-{train,val,test}.txt
# lists work as ann_file.
# Preprocessing, loader and evaluator: scene_cls_default.py (open_clip's preprocess_val).
_base_ = ['./scene_cls_default.py']
dataset_type = 'EuroSATDataset'
data_root = 'data/EuroSAT'
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, variant='rgb'))
val_dataloader = test_dataloader
