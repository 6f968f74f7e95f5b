# MMKD: two weight networks (on the teachers' logits and on feature similarities)
# meta-learned by MetaWeightHook every `interval` iterations on a quiz batch drawn from
# a buffer of hard examples. Task-specific: the weight nets' batch_size (the training
# batch, which the feature net's input width follows with the default
# feature_input='batch_similarity'), the quiz batch and the buffer's size.
weighting = dict(type='MetaWeightNet', batch_size=64)
custom_hooks = [
    dict(type='mmkd_ext.MetaWeightHook', interval=5, buffer_size=256, quiz_batch_size=64,
         inner_kd_steps=2, inner_ce_steps=1,
         optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4)),
]
