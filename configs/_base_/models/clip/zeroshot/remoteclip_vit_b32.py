# Zero-shot scene classification with RemoteCLIP ViT-B/32 (Liu et al., TGRS 2024), as its
# evaluation code does it (ChenDelong1999/ITRA, itra/evaluation/zero_shot.py and
# itra/data/classification_datasets.py): the last 20% of each class folder (ITRA lists the
# folder in glob order, which depends on the file system; here the sorted order: set by each
# configs/clip/remoteclip_vit_b32_zeroshot_*.py), ITRA's class strings (style='remoteclip') and
# templates, template embeddings averaged raw, then normalised (ensemble='raw_mean'), logits
# 100 * cosine. A config inherits this and a scene_cls data set, and names the data set's class
# names (and its templates where ITRA has a set of its own: EuroSAT, RESISC45).
_base_ = ['../remoteclip_vit_b32.py', '../../../default_runtime.py']
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(style='remoteclip'),
    templates='remoteclip_scene',
    ensemble='raw_mean',
    logit_scale=100.0)
