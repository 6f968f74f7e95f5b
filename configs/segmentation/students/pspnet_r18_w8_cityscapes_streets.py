# The student trained alone on Cityscapes-Streets (the baseline of the demo).
_base_ = [
    '../../_base_/models/pspnet_r18_w8.py', '../../_base_/datasets/cityscapes_streets.py',
    '../../_base_/schedules/streets_1k.py', '../../_base_/seg_runtime.py'
]
