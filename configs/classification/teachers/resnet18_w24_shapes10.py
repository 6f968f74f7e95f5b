# Teacher: trained alone on Shapes-10.
_base_ = [
    '../../_base_/models/resnet18_w24.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_10e.py',
    '../../_base_/default_runtime.py'
]
