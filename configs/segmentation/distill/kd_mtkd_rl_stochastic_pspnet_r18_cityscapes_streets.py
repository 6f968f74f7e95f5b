# MTKD-RL on Cityscapes-Streets with a stochastic (Dirichlet) policy trained by
# REINFORCE, no warm-up (a short schedule).
_base_ = [
    '../../_base_/distill/streets_two_teachers.py',
    '../../_base_/methods/mtkd_rl_stochastic.py'
]
model = dict(weighting=dict(_base_.pop('weighting'), warmup_epochs=0))
