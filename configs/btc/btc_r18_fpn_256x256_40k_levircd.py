# Same baseline with an FPN decoder (mmseg FPN neck + FPNHead) instead of UPerNet.
_base_ = [
    '../_base_/models/btc_r18_fpn.py', '../_base_/datasets/levir_cd.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_adamw_40k.py'
]
