# RetinaNet R50 + R101 -> R18 on COCO 2017 with MMKD (meta-learned weights; a meta
# step every 5 iterations on a quiz batch of 2 images per GPU from a hard buffer).
_base_ = [
    '../../_base_/distill/coco_retinanet_r50_r101_to_r18.py',
    '../../_base_/methods/mmkd.py'
]
model = dict(weighting=dict(_base_.pop('weighting'), batch_size=2,
                            feature_input='sorted_similarity'))
custom_hooks = [dict(_base_.custom_hooks[0], quiz_batch_size=2)]
