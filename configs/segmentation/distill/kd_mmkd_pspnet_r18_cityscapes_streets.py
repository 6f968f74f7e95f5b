# Multi-teacher KD on Cityscapes-Streets with MMKD. The feature net reads sorted,
# resampled similarity rows (batch-size independent) of the last backbone stage; hard
# images are those whose averaged scores rank an absent class above a present one.
_base_ = ['../../_base_/distill/streets_two_teachers.py', '../../_base_/methods/mmkd.py']
model = dict(weighting=dict(_base_.pop('weighting'), batch_size=8,
                            feature_input='sorted_similarity'))
custom_hooks = [dict(_base_.custom_hooks[0], buffer_size=64, quiz_batch_size=8)]
