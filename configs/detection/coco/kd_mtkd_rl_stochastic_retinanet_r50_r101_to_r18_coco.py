# MTKD-RL on COCO 2017 with a stochastic (Dirichlet) policy trained by REINFORCE.
_base_ = [
    '../../_base_/distill/coco_retinanet_r50_r101_to_r18.py',
    '../../_base_/methods/mtkd_rl_stochastic.py'
]
model = dict(weighting=_base_.pop('weighting'))
