# Multi-teacher KD on Shapes-10 with MTKD-RL: an agent reads each sample's state
# (teacher embeddings, logits, losses, feature similarity, logit gap) and sets the
# teacher weights, mixed 1/3 each with the confidence and gap rules. The agent is
# trained by RLAgentHook from per-sample rewards; the first epoch weights every
# teacher 1. This is the reference's deterministic policy.
_base_ = [
    '../../_base_/distill/shapes10_three_teachers.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_6e.py', '../../_base_/default_runtime.py'
]
# policy: dict(type='DeterministicPolicy') (the reference; shorthand 'deterministic')
# or dict(type='DirichletPolicy', concentration=...) (shorthand 'stochastic').
model = dict(
    weighting=dict(type='RLAgentWeighting', hidden_channels=128,
                   policy=dict(type='DeterministicPolicy'), dynamic=False, warmup_epochs=1))
custom_hooks = [
    # One agent update per stored batch at each epoch end (and every 1000 iterations).
    dict(type='mmkd_ext.RLAgentHook', agent_interval=1000, max_stored=1000,
         optimizer=dict(type='SGD', lr=0.1)),
]
