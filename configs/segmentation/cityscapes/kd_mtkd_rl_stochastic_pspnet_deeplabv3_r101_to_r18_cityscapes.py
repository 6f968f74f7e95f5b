# PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 on Cityscapes with MTKD-RL, stochastic (Dirichlet)
# policy trained by REINFORCE.
_base_ = [
    '../../_base_/distill/cityscapes_pspnet_deeplabv3_r101_to_r18.py',
    '../../_base_/methods/mtkd_rl_stochastic.py'
]
model = dict(weighting=_base_.pop('weighting'))
