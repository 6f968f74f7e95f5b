# Multi-teacher KD on Cityscapes-Streets with MTKD-RL (deterministic policy). The
# agent's state per teacher: its pooled last backbone stage, image-averaged class
# scores, pixel cross-entropy, feature similarity and pixel-KD gap. The agent acts from
# the first iteration (warmup_epochs=0, as the other short demo schedules).
_base_ = [
    '../../_base_/distill/streets_two_teachers.py', '../../_base_/datasets/cityscapes_streets.py',
    '../../_base_/schedules/streets_1k.py', '../../_base_/seg_runtime.py'
]
model = dict(
    weighting=dict(type='RLAgentWeighting', hidden_channels=128,
                   policy=dict(type='DeterministicPolicy'), dynamic=False, warmup_epochs=0))
custom_hooks = [
    dict(type='mmkd_ext.RLAgentHook', agent_interval=1000, max_stored=1000,
         optimizer=dict(type='SGD', lr=0.1)),
]
