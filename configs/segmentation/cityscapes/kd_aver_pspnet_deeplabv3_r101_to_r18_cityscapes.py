# PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 on Cityscapes with equal teacher weights (AVER).
_base_ = [
    '../../_base_/distill/cityscapes_pspnet_deeplabv3_r101_to_r18.py',
    '../../_base_/methods/aver.py'
]
model = dict(weighting=_base_.pop('weighting'))
