# Multi-teacher KD on Shapes-COCO with CA-MKD: teachers with a lower per-image task
# loss (the view's focal proxy) weigh more.
_base_ = [
    '../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/datasets/coco_shapes.py',
    '../../_base_/schedules/coco_shapes_12e.py', '../../_base_/det_runtime.py'
]
model = dict(weighting=dict(type='ConfidenceWeighting'))
