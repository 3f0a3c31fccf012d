# FarSLIP ViT-B-32, stage 2 (Li et al., arXiv 2511.14901; github.com/NJU-LHRS/FarSLIP).
# checkpoint: FarSLIP2_ViT-B-32.pt from huggingface.co/ZhenShiL/FarSLIP (README "Checkpoints").
#   Stage 2 uses FarSLIP's Long-CLIP text encoder (README "Testing": --use-long-clip, i.e.
#   long_clip='load_from_scratch'): 248 text positions, stored as positional_embedding and
#   positional_embedding_res (248, 512) plus mask buffers (open_clip/model.py); the 'farslip'
#   layout merges them into one exact positional_embedding, hence context_length=248 below.
#   For the stage-1 file FarSLIP1_ViT-B-32.pt (plain CLIP text, 77 tokens) drop model_cfg.
# model_name / quick_gelu: README commands use --model-arch ViT-B-32 --force-quick-gelu; training
#   starts from OpenAI CLIP (open_clip_train/config.py: --pretrained openai, --force-quick-gelu).
# Image size 224 (open_clip's ViT-B-32 config; README "All models use an input image size of 224").
model = dict(
    type='CLIP',
    model_name='ViT-B-32',
    model_cfg=dict(text_cfg=dict(context_length=248)),
    quick_gelu=True,
    checkpoint=None,  # path or URL of FarSLIP2_ViT-B-32.pt
    checkpoint_layout='farslip',
    tokenizer=dict(type='open_clip', name='ViT-B-32'))  # 248 tokens: the model's context length
