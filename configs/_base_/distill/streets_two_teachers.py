# Two Cityscapes-Streets teachers (PSPNet with a ResNetV1c-34 of 16 channels, DeepLabV3
# with a bottleneck ResNetV1c-50 of 16) distilled into a PSPNet with a ResNetV1c-18 of
# 8 channels. Logit KD is the pixel-wise KL of the decode heads' class scores over
# labelled pixels (ChannelWiseDivergence is the alternative); feature KD runs on the
# last backbone stage through a ConvAdapter per teacher. The teachers' checkpoints are
# written by `make demo-segmentation` under work_dirs/cityscapes_streets/teachers/.
# With the Cityscapes-Streets data, its 1k-iteration schedule and the segmentation
# runtime; each segmentation/distill/kd_<method>_pspnet_r18_cityscapes_streets.py adds
# a _base_/methods/ file.
_base_ = ['../datasets/cityscapes_streets.py', '../schedules/streets_1k.py',
          '../seg_runtime.py']
teacher_dir = 'work_dirs/cityscapes_streets/teachers'
model = dict(
    type='mmkd_ext.MultiTeacherDistiller',
    student='{{fileDirname}}/../../segmentation/students/pspnet_r18_w8_cityscapes_streets.py',
    teachers=[
        dict(name='psp_r34w16',
             config='{{fileDirname}}/../../segmentation/teachers/'
             'pspnet_r34_w16_cityscapes_streets.py',
             checkpoint=teacher_dir + '/pspnet_r34_w16.pth'),
        dict(name='aspp_r50w16',
             config='{{fileDirname}}/../../segmentation/teachers/'
             'deeplabv3_r50_w16_cityscapes_streets.py',
             checkpoint=teacher_dir + '/deeplabv3_r50_w16.pth'),
    ],
    task_view=dict(type='SegmentationView'),
    logit_kd=dict(type='KLDivergence', temperature=1.0, weight=1.0),
    feature_kd=dict(
        layers=['backbone.layer4'],
        adapter=dict(type='ConvAdapter', kind='conv1x1', spatial='pool'),
        loss=dict(type='FeatureMSE', normalize=True),
        weight=1.0),
    probe_shape=(3, 128, 256),
)
