# SkyCLIP ViT-B/32 (SkyScript, Wang et al., AAAI 2024):
# zero-shot image-text retrieval on RSITMD (test split).
# Protocol B (wangzhecheng/SkyScript cross_modal_retrieval.ipynb): unique images/strings.
# RetrievalMetric reports both protocols (A/..., B/...) from the same embeddings; the
# captions are formatted as this family's own evaluation does, so its own protocol's numbers
# are the comparable ones (docs/retrieval_protocols.md).
_base_ = [
    '../_base_/models/clip/skyclip_vit_b32.py',
    '../_base_/datasets/retrieval/rsitmd.py',
    '../_base_/default_runtime.py',
]
# SkyScript's prompt prefix 'a satellite image. '
val_dataloader = test_dataloader = dict(
    dataset=dict(pipeline={{_base_.prefixed_test_pipeline}}))  # retrieval_default.py
