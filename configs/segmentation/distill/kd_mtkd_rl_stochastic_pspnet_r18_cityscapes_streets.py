# MTKD-RL on Cityscapes-Streets with a stochastic (Dirichlet) policy trained by
# REINFORCE.
_base_ = './kd_mtkd_rl_pspnet_r18_cityscapes_streets.py'
model = dict(
    weighting=dict(policy=dict(type='DirichletPolicy', concentration=10.0, exploration=0.1)))
