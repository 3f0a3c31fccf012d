# RemoteCLIP ViT-B/32 fully fine-tuned on RSITMD (train split; validated on the test split with
# protocols A and B of RetrievalMetric, RemoteCLIP's caption formatting as in the zero-shot
# config). Symmetric contrastive loss over the global batch: every rank gathers the embeddings
# of all ranks (8 GPUs x 64 = 512 negatives), with the gradient of every rank's loss sent back
# to the owner of each embedding (exact DDP gradients; see mmrs/models/losses/contrastive.py).
# Mixed precision: float16 autocast + dynamic loss scaling on CUDA (AmpOptimWrapper). Without
# CUDA mmengine's AmpOptimWrapper refuses to start ("only available training on gpu..."):
# run `tools/train.py CONFIG --amp`, which switches to bfloat16 autocast on the CPU
# (mmrs.CPUAmpOptimWrapper), or set optim_wrapper.type=OptimWrapper for float32.
# Set model.checkpoint to RemoteCLIP-ViT-B-32.pt (see _base_/models/clip/remoteclip_vit_b32.py).
_base_ = ['./remoteclip_vit_b32_retrieval_rsitmd.py', '../_base_/schedules/clip_finetune.py']
model = dict(loss=dict(type='CLIPContrastiveLoss', gather_across_ranks=True, local_loss=False,
                       gather_with_grad=True))
optim_wrapper = dict(type='AmpOptimWrapper')
train_dataloader = dict(batch_size=64)  # per rank
log_processor = dict(by_epoch=True)
