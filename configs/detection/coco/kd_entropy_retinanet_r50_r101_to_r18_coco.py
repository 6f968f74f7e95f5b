# RetinaNet R50 + R101 -> R18 on COCO 2017 with EBKD (entropy) weights.
_base_ = [
    '../../_base_/distill/coco_retinanet_r50_r101_to_r18.py',
    '../../_base_/methods/entropy.py'
]
model = dict(weighting=_base_.pop('weighting'))
