# Multi-teacher KD on Shapes-COCO with MMKD. The feature net reads sorted, resampled
# similarity rows (batch-size independent) of the last FPN level; hard images are
# those where the student misses a ground-truth class.
_base_ = ['../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/methods/mmkd.py']
model = dict(weighting=dict(_base_.pop('weighting'), batch_size=8,
                            feature_input='sorted_similarity'))
custom_hooks = [dict(_base_.custom_hooks[0], buffer_size=64, quiz_batch_size=8)]
