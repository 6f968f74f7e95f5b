# Runtime of the segmentation configs: the shared runtime in mmseg's scope, counted in
# iterations as mmseg's schedules are.
_base_ = './default_runtime.py'
default_scope = 'mmseg'
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=250, max_keep_ckpts=2,
                    save_best='auto'),
    visualization=dict(_delete_=True, type='SegVisualizationHook'))
visualizer = dict(_delete_=True, type='SegLocalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
log_processor = dict(by_epoch=False)
