# PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 on Cityscapes with MTKD-RL, stochastic (Dirichlet)
# policy trained by REINFORCE.
_base_ = './kd_mtkd_rl_pspnet_deeplabv3_r101_to_r18_cityscapes.py'
model = dict(
    weighting=dict(policy=dict(type='DirichletPolicy', concentration=10.0, exploration=0.1)))
