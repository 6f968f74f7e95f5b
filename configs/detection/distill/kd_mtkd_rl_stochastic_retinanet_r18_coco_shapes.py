# MTKD-RL on Shapes-COCO with a stochastic (Dirichlet) policy trained by REINFORCE.
_base_ = './kd_mtkd_rl_retinanet_r18_coco_shapes.py'
model = dict(
    weighting=dict(policy=dict(type='DirichletPolicy', concentration=10.0, exploration=0.1)))
