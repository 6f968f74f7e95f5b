# Student trained alone on Shapes-10: the baseline every distilled student is compared with.
_base_ = [
    '../../_base_/models/resnet18_w8.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_6e.py',
    '../../_base_/default_runtime.py'
]
