# Multi-teacher KD on Cityscapes-Streets with CA-MKD: teachers with a lower pixel
# cross-entropy on the image weigh more.
_base_ = [
    '../../_base_/distill/streets_two_teachers.py', '../../_base_/datasets/cityscapes_streets.py',
    '../../_base_/schedules/streets_1k.py', '../../_base_/seg_runtime.py'
]
model = dict(weighting=dict(type='ConfidenceWeighting'))
