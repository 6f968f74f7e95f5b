# Teacher on Shapes-COCO: one of the two demo teachers (12 epochs).
_base_ = [
    '../../_base_/models/retinanet_r34_w32.py', '../../_base_/datasets/coco_shapes.py',
    '../../_base_/schedules/coco_shapes_12e.py', '../../_base_/det_runtime.py'
]
