# RetinaNet R50 + R101 -> R18 on COCO 2017 with MTKD-RL (deterministic policy, one
# warm-up epoch of summed teacher terms, agent updates every 1000 iterations and at
# each epoch end).
_base_ = [
    '../../_base_/distill/coco_retinanet_r50_r101_to_r18.py',
    '../../_base_/methods/mtkd_rl.py'
]
model = dict(weighting=_base_.pop('weighting'))
