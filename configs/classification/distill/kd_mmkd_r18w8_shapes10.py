# Multi-teacher KD on Shapes-10 with MMKD: two weight networks (logits, feature
# similarities) meta-learned every 5 iterations on a quiz batch from a hard buffer.
_base_ = [
    '../../_base_/distill/shapes10_three_teachers.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_6e.py', '../../_base_/default_runtime.py'
]
batch_size = 64
# The feature net takes each sample's row of the B x B similarity matrix, so every
# batch must have `batch_size` samples: the train dataloader drops the last one.
train_dataloader = dict(batch_size=batch_size, drop_last=True)
model = dict(weighting=dict(type='MetaWeightNet', batch_size=batch_size))
custom_hooks = [
    dict(type='mmkd_ext.MetaWeightHook', interval=5, buffer_size=256,
         quiz_batch_size=batch_size, inner_kd_steps=2, inner_ce_steps=1,
         optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4)),
]
