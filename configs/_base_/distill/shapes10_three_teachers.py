# Three Shapes-10 teachers (ResNet-18 with 24 and 16 base channels, a bottleneck
# ResNet-50 with 8) distilled into a ResNet-18 with 8 base channels.
# The teachers' checkpoints are written by `make demo` (tools/demo.py) under
# work_dirs/shapes10/teachers/; point `checkpoint` elsewhere for your own teachers.
# With the Shapes-10 data, the students' 6-epoch schedule and the shared runtime; each
# classification/distill/kd_<method>_r18w8_shapes10.py adds a _base_/methods/ file.
_base_ = ['../datasets/shapes10.py', '../schedules/shapes10_6e.py', '../default_runtime.py']
teacher_dir = 'work_dirs/shapes10/teachers'
model = dict(
    type='mmkd_ext.MultiTeacherDistiller',
    student='{{fileDirname}}/../../classification/students/resnet18_w8_shapes10.py',
    teachers=[
        dict(name='r18w24',
             config='{{fileDirname}}/../../classification/teachers/resnet18_w24_shapes10.py',
             checkpoint=teacher_dir + '/resnet18_w24.pth'),
        dict(name='r18w16',
             config='{{fileDirname}}/../../classification/teachers/resnet18_w16_shapes10.py',
             checkpoint=teacher_dir + '/resnet18_w16.pth'),
        dict(name='r50w8',
             config='{{fileDirname}}/../../classification/teachers/resnet50_w8_shapes10.py',
             checkpoint=teacher_dir + '/resnet50_w8.pth'),
    ],
    logit_kd=dict(type='KLDivergence', temperature=4.0, weight=1.0),
    feature_kd=dict(
        layers=['backbone'],
        adapter=dict(type='ConvAdapter', kind='conv1x1', spatial='pool'),
        loss=dict(type='FeatureMSE'),
        weight=1.0),
    probe_shape=(3, 32, 32),
)
