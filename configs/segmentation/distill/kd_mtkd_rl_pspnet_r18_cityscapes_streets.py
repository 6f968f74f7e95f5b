# Multi-teacher KD on Cityscapes-Streets with MTKD-RL (deterministic policy). The
# agent's state per teacher: its pooled last backbone stage, image-averaged class
# scores, pixel cross-entropy, feature similarity and pixel-KD gap. The agent acts from
# the first iteration (warmup_epochs=0, as the other short demo schedules).
_base_ = ['../../_base_/distill/streets_two_teachers.py', '../../_base_/methods/mtkd_rl.py']
model = dict(weighting=dict(_base_.pop('weighting'), warmup_epochs=0))
