# Teacher on Cityscapes-Streets: one of the two demo teachers (1000 iterations).
_base_ = [
    '../../_base_/models/pspnet_r34_w16.py', '../../_base_/datasets/cityscapes_streets.py',
    '../../_base_/schedules/streets_1k.py', '../../_base_/seg_runtime.py'
]
