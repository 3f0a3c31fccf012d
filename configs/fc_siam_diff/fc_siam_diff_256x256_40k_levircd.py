# FC-Siam-diff on LEVIR-CD, 256x256 crops, 40k iterations (open-cd's schedule; their reported
# LEVIR-CD F1 87.31 / IoU 77.47 for this setting).
_base_ = [
    '../_base_/models/fc_siam_diff.py', '../_base_/datasets/levir_cd.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_40k.py'
]
optimizer = dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4)
optim_wrapper = dict(optimizer=optimizer)
