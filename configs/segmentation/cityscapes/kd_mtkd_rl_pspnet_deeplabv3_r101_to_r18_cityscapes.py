# PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 on Cityscapes with MTKD-RL (deterministic
# policy; the first pass over the training set, len(train_dataloader) iterations, is a
# warm-up of summed teacher terms; agent updates every 1000 iterations and at each
# pass's end).
_base_ = [
    '../../_base_/distill/cityscapes_pspnet_deeplabv3_r101_to_r18.py',
    '../../_base_/methods/mtkd_rl.py'
]
model = dict(weighting=_base_.pop('weighting'))
