# PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 on Cityscapes with MMKD (meta-learned weights; a
# meta step every 5 iterations on a quiz batch of 2 images per GPU from a hard buffer).
_base_ = '../../_base_/distill/cityscapes_pspnet_deeplabv3_r101_to_r18.py'
model = dict(weighting=dict(type='MetaWeightNet', batch_size=2,
                            feature_input='sorted_similarity'))
custom_hooks = [
    dict(type='mmkd_ext.MetaWeightHook', interval=5, buffer_size=256, quiz_batch_size=2,
         inner_kd_steps=2, inner_ce_steps=1,
         optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4)),
]
