# RemoteCLIP ViT-B/32 on RSITMD, partially frozen: only the last 2 transformer blocks of each
# tower and the towers' heads (ln_post + proj, ln_final + text_projection) train, with
# logit_scale (21.1M of 151.3M parameters, 14%); patch/token embeddings and the first 10 blocks
# stay as pretrained.
# Cheaper than full fine-tuning: no gradients or optimiser state for the frozen 86%.
_base_ = ['./remoteclip_vit_b32_finetune_rsitmd.py']
model = dict(tuning=dict(freeze=dict(image='except_last_2', text='except_last_2')))
optim_wrapper = dict(optimizer=dict(lr=2e-5))
