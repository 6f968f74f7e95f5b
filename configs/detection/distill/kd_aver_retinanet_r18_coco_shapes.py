# Multi-teacher KD on Shapes-COCO with equal teacher weights (AVER).
_base_ = [
    '../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/datasets/coco_shapes.py',
    '../../_base_/schedules/coco_shapes_12e.py', '../../_base_/det_runtime.py'
]
