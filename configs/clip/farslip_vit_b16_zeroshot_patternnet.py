# FarSLIP ViT-B/16 (Li et al., 2025) zero-shot scene classification on PatternNet.
# Protocol of FarSLIP's tests/test_scene_classification.py (NJU-LHRS/FarSLIP), which is
# SkyScript's: the same two templates (open_clip_train/prompt_templates.py), open_clip's
# build_zero_shot_classifier (normalised mean), logits 100 * cosine, top-1/top-5 on SkyScript's
# benchmark CSVs (not in the repository: here the whole set and the display names).
_base_ = [
    '../_base_/models/clip/farslip_vit_b16.py',
    '../_base_/datasets/scene_cls/patternnet.py',
    '../_base_/default_runtime.py',
]
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(dataset='PatternNetDataset', style='display'),
    templates='skyscript',
    ensemble='normalized_mean',
    logit_scale=100.0)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
