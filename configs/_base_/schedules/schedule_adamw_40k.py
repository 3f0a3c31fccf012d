# 40k iterations, AdamW + linear warm-up then poly decay (transformer-friendly; BTC uses AdamW).
_base_ = ['./schedule_40k.py']
optimizer = dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1000, end=40000, by_epoch=False)
]
