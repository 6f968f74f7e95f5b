# MTKD-RL with the reference's deterministic policy: an agent reads each sample's state
# (teacher embeddings, logits, losses, feature similarity, logit gap) and sets the
# teacher weights, mixed 1/3 each with the confidence and gap rules; RLAgentHook
# trains it from per-sample rewards, one update per stored batch at each epoch end
# and every `agent_interval` iterations.
# policy: dict(type='DeterministicPolicy') (shorthand 'deterministic') or
# dict(type='DirichletPolicy', concentration=...) (shorthand 'stochastic').
# Warm-up: as the reference, every teacher weighs 1 during the first epoch (the
# teachers' terms summed) while the agent starts learning. Short schedules set
# warmup_epochs=0: there one such epoch at the peak learning rate derails the student.
weighting = dict(type='RLAgentWeighting', hidden_channels=128,
                 policy=dict(type='DeterministicPolicy'), dynamic=False, warmup_epochs=1)
custom_hooks = [
    dict(type='mmkd_ext.RLAgentHook', agent_interval=1000, max_stored=1000,
         optimizer=dict(type='SGD', lr=0.1)),
]
