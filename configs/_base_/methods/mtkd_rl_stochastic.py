# MTKD-RL with a stochastic policy: the agent's actions are sampled from a Dirichlet
# distribution during training and it learns by REINFORCE with a running-mean
# baseline; its mean action is used outside training.
_base_ = './mtkd_rl.py'
weighting = dict(policy=dict(type='DirichletPolicy', concentration=10.0, exploration=0.1))
