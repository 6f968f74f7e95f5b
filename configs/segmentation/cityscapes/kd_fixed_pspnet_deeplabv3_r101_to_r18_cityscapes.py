# PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 on Cityscapes with fixed teacher weights.
_base_ = [
    '../../_base_/distill/cityscapes_pspnet_deeplabv3_r101_to_r18.py',
    '../../_base_/methods/fixed.py'
]
model = dict(weighting=dict(_base_.pop('weighting'), weights=[0.5, 0.5]))
