# Teacher: trained alone on Shapes-10.
_base_ = [
    '../../_base_/models/resnet50_w8.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_10e.py',
    '../../_base_/default_runtime.py'
]
