# GeoRSCLIP ViT-B/32 (RS5M, Zhang et al., TGRS 2024) fully fine-tuned on RSITMD (train split;
# validated on the test split with protocols A and B of RetrievalMetric). Captions as in
# GeoRSCLIP's retrieval config: unformatted, in training as in validation.
# Same recipe as remoteclip_vit_b32_finetune_rsitmd.py: symmetric contrastive loss over the
# global batch (every rank gathers the embeddings of all ranks, 8 GPUs x 64 = 512 negatives,
# gradients sent back to each embedding's owner; mmrs/models/losses/contrastive.py), AdamW of
# _base_/schedules/clip_finetune.py, float16 AMP on CUDA (`tools/train.py CONFIG --amp` for
# bfloat16 on the CPU, or optim_wrapper.type=OptimWrapper for float32).
# Set model.checkpoint to RS5M_ViT-B-32.pt (see _base_/models/clip/georsclip_vit_b32.py).
# Export for open_clip / the zero-shot configs: tools/model_converters/clip_export.py.
_base_ = ['./georsclip_vit_b32_retrieval_rsitmd.py', '../_base_/schedules/clip_finetune.py']
model = dict(loss=dict(type='CLIPContrastiveLoss', gather_across_ranks=True, local_loss=False,
                       gather_with_grad=True))
optim_wrapper = dict(type='AmpOptimWrapper')
train_dataloader = dict(batch_size=64)  # per rank
log_processor = dict(by_epoch=True)
