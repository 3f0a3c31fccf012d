# GeoRSCLIP ViT-H/14 (~1B parameters) fully fine-tuned on RSICD with FSDP (mmengine's
# FlexibleRunner + FSDPStrategy): parameters, gradients and optimiser state are sharded over the
# GPUs, every transformer block (>= 1e7 parameters) is its own FSDP unit, and FSDP's own mixed
# precision computes in bfloat16 with float32 gradient reduction (so the optimiser wrapper is
# the plain one: no float16 loss scaling). use_orig_params=True keeps the original parameters
# visible, which per-parameter weight-decay groups and frozen/LoRA mixes need. Checkpoints are
# consolidated on rank 0 (state_dict_cfg='full').
# Launch: bash tools/dist_train.sh configs/clip/georsclip_vit_h14_finetune_rsicd_fsdp.py 8
# (needs CUDA: FSDP pins each rank to its GPU). Set model.checkpoint to RS5M_ViT-H-14.pt.
_base_ = [
    '../_base_/models/clip/georsclip_vit_h14.py',
    '../_base_/datasets/retrieval/rsicd.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/clip_finetune.py',
]
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        auto_wrap_policy=dict(type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
                              min_num_params=int(1e7)),
        sharding_strategy='FULL_SHARD',
        use_orig_params=True,
        mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                             buffer_dtype='float32')),
    state_dict_cfg='full')
model = dict(loss=dict(type='CLIPContrastiveLoss', gather_across_ranks=True,
                       gather_with_grad=True))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=5e-6))
train_dataloader = dict(batch_size=32)  # per GPU
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
log_processor = dict(by_epoch=True)
