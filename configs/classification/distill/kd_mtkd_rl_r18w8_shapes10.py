# Multi-teacher KD on Shapes-10 with MTKD-RL (the reference's deterministic policy).
# The agent acts from the first iteration (warmup_epochs=0): on this 6-epoch schedule
# one warm-up epoch at the peak learning rate derails the student (19.6% top-1 after
# 6 epochs, vs 52.8% without warm-up, agent updates off in both).
_base_ = ['../../_base_/distill/shapes10_three_teachers.py', '../../_base_/methods/mtkd_rl.py']
model = dict(weighting=dict(_base_.pop('weighting'), warmup_epochs=0))
