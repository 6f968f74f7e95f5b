# Multi-teacher KD on Shapes-COCO with MMKD. The feature net reads sorted, resampled
# similarity rows (batch-size independent) of the last FPN level; hard images are
# those where the student misses a ground-truth class.
_base_ = [
    '../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/datasets/coco_shapes.py',
    '../../_base_/schedules/coco_shapes_12e.py', '../../_base_/det_runtime.py'
]
model = dict(weighting=dict(type='MetaWeightNet', batch_size=8,
                            feature_input='sorted_similarity'))
custom_hooks = [
    dict(type='mmkd_ext.MetaWeightHook', interval=5, buffer_size=64, quiz_batch_size=8,
         inner_kd_steps=2, inner_ce_steps=1,
         optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4)),
]
