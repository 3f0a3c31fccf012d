# FarSLIP ViT-B/16, stage 2 (Li et al., arXiv 2511.14901) fully fine-tuned on RSITMD (train
# split; validated on the test split with protocols A and B of RetrievalMetric). Captions
# formatted as in FarSLIP's retrieval config (SkyScript's prefix 'a satellite image. '), in
# training too, so the text tower is fine-tuned on the text it is evaluated with; the Long-CLIP
# text tower keeps its 248 positions (_base_/models/clip/farslip_vit_b16.py).
# Same recipe as remoteclip_vit_b32_finetune_rsitmd.py: symmetric contrastive loss over the
# global batch (every rank gathers the embeddings of all ranks, 8 GPUs x 64 = 512 negatives,
# gradients sent back to each embedding's owner; mmrs/models/losses/contrastive.py), AdamW of
# _base_/schedules/clip_finetune.py, float16 AMP on CUDA (`tools/train.py CONFIG --amp` for
# bfloat16 on the CPU, or optim_wrapper.type=OptimWrapper for float32).
# Set model.checkpoint to FarSLIP2_ViT-B-16.pt.
# Export for open_clip / the zero-shot configs: tools/model_converters/clip_export.py.
_base_ = ['./farslip_vit_b16_retrieval_rsitmd.py', '../_base_/schedules/clip_finetune.py']
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=224, crop_ratio_range=(0.9, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCaption'),
    dict(type='FormatCaptions', prefix='a satellite image. ', keys=('text', )),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['text']),
]
model = dict(loss=dict(type='CLIPContrastiveLoss', gather_across_ranks=True, local_loss=False,
                       gather_with_grad=True))
optim_wrapper = dict(type='AmpOptimWrapper')
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))  # per rank
log_processor = dict(by_epoch=True)
