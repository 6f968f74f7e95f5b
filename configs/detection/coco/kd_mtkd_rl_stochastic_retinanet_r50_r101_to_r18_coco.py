# MTKD-RL on COCO 2017 with a stochastic (Dirichlet) policy trained by REINFORCE.
_base_ = './kd_mtkd_rl_retinanet_r50_r101_to_r18_coco.py'
model = dict(
    weighting=dict(policy=dict(type='DirichletPolicy', concentration=10.0, exploration=0.1)))
