# Cityscapes-Streets: generated street scenes in the real Cityscapes layout (written by
# `python tools/make_data.py segmentation`), 128x256 images, the 19 Cityscapes train
# ids with 255 as ignore. As mmseg's Cityscapes configs (512x1024 crops of rescaled
# 1024x2048 images), training sees crops of a quarter of the image (64x128) of images
# rescaled by 0.5-2; testing sees whole images. Label files are checked on load
# (mmkd_ext.CheckedCityscapesDataset): a missing pair or an id outside 0-18/255 is an
# error naming the file.
dataset_type = 'mmkd_ext.CheckedCityscapesDataset'
data_root = 'data/cityscapes_streets/'
crop_size = (64, 128)
# sample_idx is kept for MMKD's hard-example buffer.
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label', 'sample_idx')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
