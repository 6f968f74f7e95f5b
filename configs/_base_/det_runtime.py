# Runtime of the detection configs: the shared runtime in mmdet's scope.
_base_ = './default_runtime.py'
default_scope = 'mmdet'
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    visualization=dict(_delete_=True, type='DetVisualizationHook'))
visualizer = dict(_delete_=True, type='DetLocalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
