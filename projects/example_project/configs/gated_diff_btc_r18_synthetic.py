# A downstream config: inherits mmrs base configs through `mmrs::` paths (found inside the
# installed mmrs package), imports this project's package, and swaps the fusion neck for the
# project's own GatedDiffNeck. Run from the mmrs checkout (or anywhere with mmrs installed):
#   PYTHONPATH=projects/example_project python tools/train.py \
#       projects/example_project/configs/gated_diff_btc_r18_synthetic.py
_base_ = [
    'mmrs::_base_/models/btc_r18_upernet.py', 'mmrs::_base_/datasets/synthetic.py',
    'mmrs::_base_/default_runtime.py', 'mmrs::_base_/schedules/schedule_adamw_40k.py'
]
custom_imports = dict(imports=['example_project'], allow_failed_imports=False)
model = dict(neck=dict(_delete_=True, type='GatedDiffNeck', in_channels=[64, 128, 256, 512]))
train_cfg = dict(max_iters=2000, val_interval=500)
