# GeoRSCLIP ViT-B/32 (RS5M, Zhang et al., TGRS 2024):
# zero-shot image-text retrieval on RSICD (test split).
# Protocol A (om-ai-lab/RS5M inference/inference_tool.py, CLIP_benchmark's recall_at_k).
# RetrievalMetric reports both protocols (A/..., B/...) from the same embeddings; the
# captions are formatted as this family's own evaluation does, so its own protocol's numbers
# are the comparable ones (docs/retrieval_protocols.md).
_base_ = [
    '../_base_/models/clip/georsclip_vit_b32.py',
    '../_base_/datasets/retrieval/rsicd.py',
    '../_base_/default_runtime.py',
]
# GeoRSCLIP: captions as in its test CSV, unformatted (the dataset config's test_pipeline).
