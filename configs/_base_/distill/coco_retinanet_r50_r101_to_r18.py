# Real COCO 2017: RetinaNet-R50 and RetinaNet-R101 teachers (mmdet model zoo, 1x)
# distilled into a RetinaNet-R18, 1x schedule, 8 GPUs x 2 images, as mmdet's
# retinanet configs. Put COCO under data/coco/ (mmdet's layout) and run e.g.
#   tools/dist_train.sh configs/detection/coco/kd_aver_retinanet_r50_r101_to_r18_coco.py 8
# Teachers are downloaded from the model zoo on first use. Each
# detection/coco/kd_<method>_retinanet_r50_r101_to_r18_coco.py adds a _base_/methods/ file.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py', 'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmkd_ext'], allow_failed_imports=False)
# Exact resume, and workers that exit with the main process (as in
# ../default_runtime.py, which these real-dataset configs do not use).
default_hooks = dict(random_state=dict(type='mmkd_ext.RandomStateHook'))
zoo = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
model = dict(
    type='mmkd_ext.MultiTeacherDistiller',
    # The student's backbone starts from torchvision's ImageNet weights (its config).
    student=dict(config='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'),
    teachers=[
        dict(name='r50', config='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
             checkpoint=zoo + 'retinanet_r50_fpn_1x_coco/'
             'retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth'),
        dict(name='r101', config='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
             checkpoint=zoo + 'retinanet_r101_fpn_1x_coco/'
             'retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'),
    ],
    task_view=dict(type='DenseDetectionView'),
    logit_kd=dict(type='SigmoidKLDivergence', temperature=1.0, weight=1.0),
    feature_kd=dict(
        layers=['neck'],
        adapter=dict(type='ConvAdapter', kind='conv1x1', spatial='pool'),
        loss=dict(type='FeatureMSE', normalize=True),
        weight=1.0),
    probe_shape=(3, 256, 256),
)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
# The training pipeline keeps sample_idx (MMKD's hard-example buffer reads it).
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'sample_idx')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
