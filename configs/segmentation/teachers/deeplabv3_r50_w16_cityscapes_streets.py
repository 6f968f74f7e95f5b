# Teacher on Cityscapes-Streets: one of the two demo teachers (1000 iterations), with
# another decode head (ASPP) than the PSPNets.
_base_ = [
    '../../_base_/models/deeplabv3_r50_w16.py', '../../_base_/datasets/cityscapes_streets.py',
    '../../_base_/schedules/streets_1k.py', '../../_base_/seg_runtime.py'
]
