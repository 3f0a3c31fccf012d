# Zero-shot scene classification with GeoRSCLIP ViT-B/32 (Zhang et al., RS5M, TGRS 2024), as
# its evaluation code does it (om-ai-lab/RS5M inference/inference_tool.py): the whole data set
# (torchrs ImageFolder), folder names with '_'/'/' -> ' ' and lower-cased as class strings
# (style='georsclip': AID 'denseresidential', EuroSAT 'annualcrop'), the 105 RS5M templates,
# template embeddings averaged raw, then normalised, logits 100 * cosine. A config inherits
# this and a scene_cls data set, and names the data set's class names.
_base_ = ['../georsclip_vit_b32.py', '../../../default_runtime.py']
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(style='georsclip'),
    templates='georsclip',
    ensemble='raw_mean',
    logit_scale=100.0)
