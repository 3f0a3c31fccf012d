# RemoteCLIP ViT-B/32 on RSITMD with LoRA (Hu et al., ICLR 2022) instead of full fine-tuning:
# rank-16 adapters (peft) on the query/key/value/output projections of every attention (open_clip's
# nn.MultiheadAttention is swapped for an equivalent with Linear projections, see
# mmrs/models/clip/tuning.py) and on the MLPs (c_fc, c_proj) of both towers; everything else is
# frozen except logit_scale: 4.4M trainable parameters next to the 151M frozen ones (~3%); the
# log reports the counts. Needs `pip install peft`.
# Merge the adapters for export with mmrs.models.clip.tuning.merge_lora(model).
_base_ = ['./remoteclip_vit_b32_finetune_rsitmd.py']
model = dict(tuning=dict(lora=dict(r=16, alpha=32, dropout=0.05, towers=('image', 'text'),
                                   targets=('attn', 'mlp'), trainable=('logit_scale', ))))
# adapters start at zero (lora_B): a larger learning rate than full fine-tuning
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05))
