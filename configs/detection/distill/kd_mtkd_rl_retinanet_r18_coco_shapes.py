# Multi-teacher KD on Shapes-COCO with MTKD-RL (deterministic policy). The agent's
# state per teacher: its pooled last FPN level, per-image class scores, focal-proxy
# loss, feature similarity and head-KD gap. The agent acts from the first iteration:
# on a short schedule a warm-up epoch of summed teacher terms can derail the student
# (see the classification config); keep warmup_epochs=1 for long schedules.
_base_ = [
    '../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/datasets/coco_shapes.py',
    '../../_base_/schedules/coco_shapes_12e.py', '../../_base_/det_runtime.py'
]
model = dict(
    weighting=dict(type='RLAgentWeighting', hidden_channels=128,
                   policy=dict(type='DeterministicPolicy'), dynamic=False, warmup_epochs=0))
custom_hooks = [
    dict(type='mmkd_ext.RLAgentHook', agent_interval=1000, max_stored=1000,
         optimizer=dict(type='SGD', lr=0.1)),
]
