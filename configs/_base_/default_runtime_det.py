# Runtime of the rotated detectors: mmrs's runtime with mmrotate's box visualizer and logs by
# epoch (the detection schedules are epoch-based).
_base_ = ['./default_runtime.py']
visualizer = dict(
    _delete_=True, type='mmrotate.RotLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
log_processor = dict(by_epoch=True, window_size=50)
