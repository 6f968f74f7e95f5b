# Multi-teacher KD on Shapes-COCO with MTKD-RL (deterministic policy). The agent's
# state per teacher: its pooled last FPN level, per-image class scores, focal-proxy
# loss, feature similarity and head-KD gap. The agent acts from the first iteration
# (warmup_epochs=0) on this short schedule.
_base_ = [
    '../../_base_/distill/coco_shapes_two_teachers.py',
    '../../_base_/methods/mtkd_rl.py'
]
model = dict(weighting=dict(_base_.pop('weighting'), warmup_epochs=0))
