# Semantic change detection on SECOND: BTC-style ResNet-18 Siamese with a binary UPerNet head
# on the fused features and one semantic head per date (SiameseSemanticChangeDetector).
# Evaluated with SCDMetric (SECOND's mIoU/SeK/Fscd, plus the open-cd and MambaCD variants).
_base_ = [
    '../_base_/models/scd_r18_upernet.py', '../_base_/datasets/second.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_adamw_40k.py'
]
default_hooks = dict(checkpoint=dict(save_best='SeK'))
