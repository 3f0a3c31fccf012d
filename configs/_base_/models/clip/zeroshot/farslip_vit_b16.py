# Zero-shot scene classification with FarSLIP ViT-B/16 (Li et al., 2025), as FarSLIP's
# tests/test_scene_classification.py does it (NJU-LHRS/FarSLIP), which is SkyScript's (see
# skyclip_vit_b32.py): the same two templates (open_clip_train/prompt_templates.py), open_clip's
# build_zero_shot_classifier (normalised mean), logits 100 * cosine, top-1/top-5 on SkyScript's
# benchmark CSVs (not in the repository: here the whole set and the display names). A config
# inherits this and a scene_cls data set, and names the data set's class names.
_base_ = ['../farslip_vit_b16.py', '../../../default_runtime.py']
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(style='display'),
    templates='skyscript',
    ensemble='normalized_mean',
    logit_scale=100.0)
