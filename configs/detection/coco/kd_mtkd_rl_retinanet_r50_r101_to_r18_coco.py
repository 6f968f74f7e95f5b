# RetinaNet R50 + R101 -> R18 on COCO 2017 with MTKD-RL (deterministic policy, one
# warm-up epoch of summed teacher terms, agent updates every 1000 iterations and at
# each epoch end).
_base_ = '../../_base_/distill/coco_retinanet_r50_r101_to_r18.py'
model = dict(weighting=dict(type='RLAgentWeighting', policy=dict(type='DeterministicPolicy'),
                            warmup_epochs=1))
custom_hooks = [dict(type='mmkd_ext.RLAgentHook', agent_interval=1000, max_stored=1000)]
