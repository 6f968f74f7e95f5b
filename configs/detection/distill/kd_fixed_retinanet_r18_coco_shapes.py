# Multi-teacher KD on Shapes-COCO with fixed teacher weights.
_base_ = [
    '../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/datasets/coco_shapes.py',
    '../../_base_/schedules/coco_shapes_12e.py', '../../_base_/det_runtime.py'
]
model = dict(weighting=dict(type='FixedWeighting', weights=[0.6, 0.4]))
