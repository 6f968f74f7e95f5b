# Teacher: trained alone on Shapes-10.
_base_ = [
    '../../_base_/models/mobilenet_v2.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_short.py',
    '../../_base_/default_runtime.py'
]
