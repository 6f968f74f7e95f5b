# Multi-teacher KD on Shapes-10 with MTKD-RL: an agent reads each sample's state
# (teacher embeddings, logits, losses, feature similarity, logit gap) and sets the
# teacher weights, mixed 1/3 each with the confidence and gap rules. The agent is
# trained by RLAgentHook from per-sample rewards. This is the reference's
# deterministic policy.
#
# Warm-up: the reference weighs every teacher 1 during its first epoch (of 240),
# i.e. the three teachers' terms summed, while the agent starts learning. On this
# 6-epoch schedule one such epoch at the peak learning rate derails the student
# (19.6% top-1 after 6 epochs, vs 52.8% without warm-up, agent updates off in both),
# so the agent acts from the first iteration here; keep warmup_epochs=1 for long
# schedules.
_base_ = [
    '../../_base_/distill/shapes10_three_teachers.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_6e.py', '../../_base_/default_runtime.py'
]
# policy: dict(type='DeterministicPolicy') (the reference; shorthand 'deterministic')
# or dict(type='DirichletPolicy', concentration=...) (shorthand 'stochastic').
model = dict(
    weighting=dict(type='RLAgentWeighting', hidden_channels=128,
                   policy=dict(type='DeterministicPolicy'), dynamic=False, warmup_epochs=0))
custom_hooks = [
    # One agent update per stored batch at each epoch end (and every 1000 iterations).
    dict(type='mmkd_ext.RLAgentHook', agent_interval=1000, max_stored=1000,
         optimizer=dict(type='SGD', lr=0.1)),
]
