# Student on Shapes-COCO: trained alone, the baseline every distilled student is compared with.
_base_ = [
    '../../_base_/models/retinanet_r18_w16.py', '../../_base_/datasets/coco_shapes.py',
    '../../_base_/schedules/coco_shapes_12e.py', '../../_base_/det_runtime.py'
]
