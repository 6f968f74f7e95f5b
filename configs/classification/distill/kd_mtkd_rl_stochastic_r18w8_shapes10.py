# Multi-teacher KD on Shapes-10 with MTKD-RL, stochastic (Dirichlet) policy trained by
# REINFORCE; no warm-up on this short schedule, as kd_mtkd_rl_r18w8_shapes10.py.
_base_ = [
    '../../_base_/distill/shapes10_three_teachers.py',
    '../../_base_/methods/mtkd_rl_stochastic.py'
]
model = dict(weighting=dict(_base_.pop('weighting'), warmup_epochs=0))
