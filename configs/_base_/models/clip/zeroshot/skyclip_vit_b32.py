# Zero-shot scene classification with SkyCLIP ViT-B/32 (Wang et al., AAAI 2024), as SkyScript's
# test_zero_shot_classification.py does it (wangzhecheng/SkyScript): the two templates of
# prompt_templates.py, normalised template embeddings averaged and renormalised, logits
# 100 * cosine, top-1/top-5. SkyScript reads its own CSV test lists and classnames.txt files
# (distributed with its benchmark download, not in the repository): here the whole set and this
# package's display names, so numbers can differ slightly from the paper's. A config inherits
# this and a scene_cls data set, and names the data set's class names.
_base_ = ['../skyclip_vit_b32.py', '../../../default_runtime.py']
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(style='display'),
    templates='skyscript',
    ensemble='normalized_mean',
    logit_scale=100.0)
