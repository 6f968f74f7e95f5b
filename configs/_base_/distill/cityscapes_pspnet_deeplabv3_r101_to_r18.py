# Real Cityscapes: PSPNet-R101 and DeepLabV3-R101 teachers (mmseg model zoo, 80k
# iterations on 512x1024 crops) distilled into a PSPNet-R18 with mmseg's 80k schedule,
# 4 GPUs x 2 images as mmseg's configs. Put Cityscapes under data/cityscapes/ (mmseg's
# layout, labelTrainIds written by its tools/dataset_converters/cityscapes.py) and run
#   tools/dist_train.sh configs/segmentation/cityscapes/kd_aver_pspnet_deeplabv3_r101_to_r18_cityscapes.py 4
# Teachers are downloaded from the model zoo on first use. SyncBN stays SyncBN in
# multi-GPU runs and becomes BN in a single process. Each segmentation/cityscapes/
# kd_<method>_pspnet_deeplabv3_r101_to_r18_cityscapes.py adds a _base_/methods/ file.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py', 'mmseg::_base_/schedules/schedule_80k.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmkd_ext'], allow_failed_imports=False)
# Exact resume, and workers that exit with the main process (as in
# ../default_runtime.py, which these real-dataset configs do not use).
default_hooks = dict(random_state=dict(type='mmkd_ext.RandomStateHook'))
zoo = 'https://download.openmmlab.com/mmsegmentation/v0.5/'
model = dict(
    type='mmkd_ext.MultiTeacherDistiller',
    # The student's backbone starts from ImageNet weights (open-mmlab://resnet18_v1c,
    # its config).
    student=dict(config='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    teachers=[
        dict(name='psp_r101',
             config='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
             checkpoint=zoo + 'pspnet/pspnet_r101-d8_512x1024_80k_cityscapes/'
             'pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth'),
        dict(name='aspp_r101',
             config='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
             checkpoint=zoo + 'deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/'
             'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'),
    ],
    task_view=dict(type='SegmentationView'),
    logit_kd=dict(type='KLDivergence', temperature=1.0, weight=1.0),
    feature_kd=dict(
        layers=['backbone.layer4'],
        adapter=dict(type='ConvAdapter', kind='conv1x1', spatial='pool'),
        loss=dict(type='FeatureMSE', normalize=True),
        weight=1.0),
    probe_shape=(3, 256, 512),
)
# mmseg's Cityscapes training pipeline, keeping sample_idx (MMKD's hard-example buffer).
crop_size = (512, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs',
         meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                    'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
                    'sample_idx')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
