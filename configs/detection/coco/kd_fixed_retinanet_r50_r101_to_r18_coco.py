# RetinaNet R50 + R101 -> R18 on COCO 2017 with fixed teacher weights.
_base_ = [
    '../../_base_/distill/coco_retinanet_r50_r101_to_r18.py',
    '../../_base_/methods/fixed.py'
]
model = dict(weighting=dict(_base_.pop('weighting'), weights=[0.4, 0.6]))
