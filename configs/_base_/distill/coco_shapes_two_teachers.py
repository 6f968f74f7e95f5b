# Two Shapes-COCO RetinaNet teachers (ResNet-34 with 32 base channels, bottleneck
# ResNet-50 with 16) distilled into a RetinaNet with a ResNet-18 of 16 channels.
# Head KD compares the sigmoid class scores location by location (same anchors and
# strides in every model); feature KD runs on every FPN level through a ConvAdapter
# per (teacher, level). The teachers' checkpoints are written by `make demo` under
# work_dirs/coco_shapes/teachers/. With the Shapes-COCO data, its 12-epoch schedule and
# the detection runtime; each detection/distill/kd_<method>_retinanet_r18_coco_shapes.py
# adds a _base_/methods/ file.
_base_ = ['../datasets/coco_shapes.py', '../schedules/coco_shapes_12e.py',
          '../det_runtime.py']
teacher_dir = 'work_dirs/coco_shapes/teachers'
model = dict(
    type='mmkd_ext.MultiTeacherDistiller',
    student='{{fileDirname}}/../../detection/students/retinanet_r18_w16_coco_shapes.py',
    teachers=[
        dict(name='r34w32',
             config='{{fileDirname}}/../../detection/teachers/retinanet_r34_w32_coco_shapes.py',
             checkpoint=teacher_dir + '/retinanet_r34_w32.pth'),
        dict(name='r50w16',
             config='{{fileDirname}}/../../detection/teachers/retinanet_r50_w16_coco_shapes.py',
             checkpoint=teacher_dir + '/retinanet_r50_w16.pth'),
    ],
    task_view=dict(type='DenseDetectionView'),
    logit_kd=dict(type='SigmoidKLDivergence', temperature=1.0, weight=1.0),
    feature_kd=dict(
        layers=['neck'],
        adapter=dict(type='ConvAdapter', kind='conv1x1', spatial='pool'),
        loss=dict(type='FeatureMSE', normalize=True),
        weight=1.0),
    probe_shape=(3, 160, 160),
)
