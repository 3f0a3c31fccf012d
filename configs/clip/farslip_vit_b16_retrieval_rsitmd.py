# FarSLIP ViT-B/16 (Li et al., arXiv 2511.14901):
# zero-shot image-text retrieval on RSITMD (test split).
# Protocol B (NJU-LHRS/FarSLIP tests/test_retrieval.py): unique images/strings.
# RetrievalMetric reports both protocols (A/..., B/...) from the same embeddings; the
# captions are formatted as this family's own evaluation does, so its own protocol's numbers
# are the comparable ones (docs/retrieval_protocols.md).
_base_ = [
    '../_base_/models/clip/farslip_vit_b16.py',
    '../_base_/datasets/retrieval/rsitmd.py',
    '../_base_/default_runtime.py',
]
# FarSLIP = SkyScript's prefix 'a satellite image. '
val_dataloader = test_dataloader = dict(
    dataset=dict(pipeline={{_base_.prefixed_test_pipeline}}))  # retrieval_default.py
