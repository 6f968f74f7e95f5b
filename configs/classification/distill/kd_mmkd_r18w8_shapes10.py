# Multi-teacher KD on Shapes-10 with MMKD: two weight networks (logits, feature
# similarities) meta-learned every 5 iterations on a quiz batch from a hard buffer.
_base_ = ['../../_base_/distill/shapes10_three_teachers.py', '../../_base_/methods/mmkd.py']
batch_size = 64
# The feature net takes each sample's row of the B x B similarity matrix, so every
# batch must have `batch_size` samples: the train dataloader drops the last one.
train_dataloader = dict(batch_size=batch_size, drop_last=True)
model = dict(weighting=dict(_base_.pop('weighting'), batch_size=batch_size))
custom_hooks = [dict(_base_.custom_hooks[0], quiz_batch_size=batch_size)]
