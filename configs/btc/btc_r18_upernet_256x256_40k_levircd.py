# BTC-style best-practice baseline on LEVIR-CD: shared ResNet-18, SubDiff fusion, UPerNet,
# AdamW with warm-up + poly decay, flips/rot90/photometric/date-exchange augmentation.
_base_ = [
    '../_base_/models/btc_r18_upernet.py', '../_base_/datasets/levir_cd.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_adamw_40k.py'
]
