# PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 on Cityscapes with MMKD (meta-learned
# weights; a meta step every 5 iterations on a quiz batch of 2 images per GPU from a
# hard buffer). The look-ahead differentiates twice through the student, which torch's
# SyncBN cannot: the student uses plain BN (per-GPU statistics) here.
_base_ = [
    '../../_base_/distill/cityscapes_pspnet_deeplabv3_r101_to_r18.py',
    '../../_base_/methods/mmkd.py'
]
bn = dict(type='BN', requires_grad=True)
model = dict(
    student=dict(cfg_options={'backbone.norm_cfg': bn, 'decode_head.norm_cfg': bn,
                              'auxiliary_head.norm_cfg': bn}),
    weighting=dict(_base_.pop('weighting'), batch_size=2, feature_input='sorted_similarity'))
custom_hooks = [dict(_base_.custom_hooks[0], quiz_batch_size=2)]
