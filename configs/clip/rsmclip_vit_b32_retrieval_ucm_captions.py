# RS-M-CLIP ViT-B/32 (Silva et al., 2024):
# zero-shot image-text retrieval on UCM-Captions (test split).
# Protocol A assumed: RS-M-CLIP compares with RemoteCLIP's table (no evaluation code released).
# RetrievalMetric reports both protocols (A/..., B/...) from the same embeddings; the
# captions are formatted as this family's own evaluation does, so its own protocol's numbers
# are the comparable ones (docs/retrieval_protocols.md).
_base_ = [
    '../_base_/models/clip/rsmclip_vit_b32.py',
    '../_base_/datasets/retrieval/ucm_captions.py',
    '../_base_/default_runtime.py',
]
# RS-M-CLIP: no evaluation code published; captions unformatted (the dataset's test_pipeline).
