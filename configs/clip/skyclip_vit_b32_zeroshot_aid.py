# SkyCLIP ViT-B/32 (Wang et al., AAAI 2024) zero-shot scene classification on AID.
# Protocol of SkyScript's test_zero_shot_classification.py (wangzhecheng/SkyScript): the two
# templates of prompt_templates.py, normalised template embeddings averaged and renormalised,
# logits 100 * cosine, top-1/top-5. SkyScript reads its own CSV test lists and classnames.txt
# files (distributed with its benchmark download, not in the repository): here the whole set
# and this package's display names, so numbers can differ slightly from the paper's.
_base_ = [
    '../_base_/models/clip/skyclip_vit_b32.py',
    '../_base_/datasets/scene_cls/aid.py',
    '../_base_/default_runtime.py',
]
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(dataset='AIDDataset', style='display'),
    templates='skyscript',
    ensemble='normalized_mean',
    logit_scale=100.0)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
