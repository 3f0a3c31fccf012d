# FC-Siam-diff on SECOND as binary change detection (change = semantic label of date 1 != 0),
# the usual way binary CD methods are compared on SECOND.
_base_ = [
    '../_base_/models/fc_siam_diff.py', '../_base_/datasets/second.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_40k.py'
]
optimizer = dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4)
optim_wrapper = dict(optimizer=optimizer)
val_evaluator = dict(_delete_=True, type='ChangeMetric')
test_evaluator = val_evaluator
