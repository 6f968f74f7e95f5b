# Multi-teacher KD on Shapes-COCO with a teacher of another task: the two RetinaNet
# teachers and the classification demo's best model, a ResNet-18 (24 base channels)
# trained on Shapes-10's 32 px shapes, with equal teacher weights (AVER). A model of
# another library than the student's is a feature teacher: it runs its extract_feat
# only (backbone and pooling neck, no head) and distils features, with the equal
# share 1/3 of the feature weight; the weighting shares the rest (and all of the head
# KD) among the RetinaNets. Feature KD compares the backbones' last maps (every
# teacher's, since the layers are the pool's): the ResNet's stride-8 map of a 160 px
# image (20x20) is average-pooled to the student's stride-32 5x5 map by the
# ConvAdapter. The ResNet is written by `make demo` under work_dirs/shapes10/teachers/.
_base_ = ['../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/methods/aver.py']
teacher_dir = 'work_dirs/coco_shapes/teachers'
model = dict(
    teachers=[
        dict(name='r34w32',
             config='{{fileDirname}}/../teachers/retinanet_r34_w32_coco_shapes.py',
             checkpoint=teacher_dir + '/retinanet_r34_w32.pth'),
        dict(name='r50w16',
             config='{{fileDirname}}/../teachers/retinanet_r50_w16_coco_shapes.py',
             checkpoint=teacher_dir + '/retinanet_r50_w16.pth'),
        dict(name='cls_r18w24',
             config='{{fileDirname}}/../../classification/teachers/resnet18_w24_shapes10.py',
             checkpoint='work_dirs/shapes10/teachers/resnet18_w24.pth'),
    ],
    feature_kd=dict(layers=['backbone[-1]']),
    weighting=_base_.pop('weighting'))
