# A GFL teacher on Shapes-COCO (12 epochs): a dense head of another family than the
# RetinaNets (one anchor per location, IoU-aware class scores).
_base_ = [
    '../../_base_/models/gfl_r34_w32.py', '../../_base_/datasets/coco_shapes.py',
    '../../_base_/schedules/coco_shapes_12e.py', '../../_base_/det_runtime.py'
]
