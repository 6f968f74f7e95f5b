"""Cityscapes-Streets: the generated segmentation set in the real Cityscapes layout,
and the checks that refuse incomplete image / label pairs or invalid label images."""
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmkd_ext.datasets import (CheckedCityscapesDataset, CityscapesLabelError,
                               check_cityscapes_pairs)
from mmkd_ext.synthetic_data import CITYSCAPES_CLASSES, generate_street_scenes

from conftest import ROOT

IMG_SUFFIX, SEG_SUFFIX = '_leftImg8bit.png', '_gtFine_labelTrainIds.png'
SIZE = dict(height=64, width=128)
COUNTS = dict(train=12, val=6)
CITIES = dict(train={'aachen', 'bochum', 'bremen'}, val={'frankfurt', 'lindau'})


@pytest.fixture(scope='module')
def small_streets_root(tmp_path_factory):
    """Cityscapes-Streets with 12 train / 6 val images of 64x128."""
    root = str(tmp_path_factory.mktemp('cityscapes_streets'))
    generate_street_scenes(root, num_train=COUNTS['train'], num_val=COUNTS['val'], seed=0,
                           **SIZE)
    return root


def split_dirs(root, split='val'):
    return osp.join(root, 'leftImg8bit', split), osp.join(root, 'gtFine', split)


def files(root, split, suffix):
    folder = split_dirs(root, split)[0 if suffix == IMG_SUFFIX else 1]
    return sorted(glob.glob(osp.join(folder, '*', '*' + suffix)))


def read_label(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def dataset_args(root, split='val'):
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets.transforms import LoadAnnotations, PackSegInputs
    return dict(data_root=root,
                data_prefix=dict(img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'),
                pipeline=[LoadImageFromFile(), LoadAnnotations(), PackSegInputs()])


def mmseg_dataset(root, split='val'):
    from mmseg.datasets import CityscapesDataset
    return CityscapesDataset(**dataset_args(root, split))


def checked_dataset(root, split='val'):
    from mmkd_ext.registry import DATASETS
    return DATASETS.build(dict(type='mmkd_ext.CheckedCityscapesDataset',
                               **dataset_args(root, split)))


def test_layout_and_file_names_are_cityscapes(small_streets_root):
    assert sorted(os.listdir(small_streets_root)) == ['gtFine', 'leftImg8bit', 'meta.json']
    for split in ('train', 'val'):
        img_dir, seg_dir = split_dirs(small_streets_root, split)
        images = files(small_streets_root, split, IMG_SUFFIX)
        labels = files(small_streets_root, split, SEG_SUFFIX)
        assert len(images) == len(labels) == COUNTS[split]
        assert sorted(os.listdir(img_dir)) == sorted(os.listdir(seg_dir)) == sorted(CITIES[split])
        for img_path, seg_path in zip(images, labels):
            city, name = osp.relpath(img_path, img_dir).split(os.sep)
            stem = name[:-len(IMG_SUFFIX)]
            assert re.fullmatch(rf'{city}_\d{{6}}_\d{{6}}', stem), name
            assert seg_path == osp.join(seg_dir, city, stem + SEG_SUFFIX)
            image, label = cv2.imread(img_path, cv2.IMREAD_UNCHANGED), read_label(seg_path)
            assert image.shape == (64, 128, 3) and image.dtype == np.uint8
            assert label.shape == (64, 128) and label.dtype == np.uint8


def test_mmseg_cityscapes_dataset_reads_every_pair(small_streets_root):
    dataset = mmseg_dataset(small_streets_root)
    labels = files(small_streets_root, 'val', SEG_SUFFIX)
    assert len(dataset) == len(labels) == COUNTS['val']
    for idx in range(len(dataset)):
        sample = dataset[idx]
        assert tuple(sample['inputs'].shape) == (3, 64, 128)
        gt = sample['data_samples'].gt_sem_seg.data.numpy()[0]
        assert np.array_equal(gt, read_label(dataset.get_data_info(idx)['seg_map_path']))
    assert dataset.metainfo['classes'] == CITYSCAPES_CLASSES


def test_labels_are_train_ids_of_many_classes(small_streets_root):
    counts = np.zeros(256, np.int64)
    for split in ('train', 'val'):
        for path in files(small_streets_root, split, SEG_SUFFIX):
            counts += np.bincount(read_label(path).ravel(), minlength=256)
    present = set(np.flatnonzero(counts).tolist())
    assert present <= set(range(19)) | {255}
    names = {CITYSCAPES_CLASSES[i] for i in present if i < 19}
    assert {'road', 'sidewalk', 'building', 'vegetation', 'sky', 'car', 'pole', 'person',
            'traffic sign'} <= names
    assert len(names) >= 12
    fractions = counts[:19] / counts[:19].sum()
    assert fractions[CITYSCAPES_CLASSES.index('road')] > 0.15  # the road dominates, as in Cityscapes


def test_iou_metric_scores_the_ground_truth_as_perfect(small_streets_root):
    """mmseg's IoUMetric: the ground truth as prediction gives mIoU 100; road
    predicted as sidewalk much less."""
    import torch
    from mmseg.evaluation import IoUMetric
    dataset = mmseg_dataset(small_streets_root)
    road, sidewalk = CITYSCAPES_CLASSES.index('road'), CITYSCAPES_CLASSES.index('sidewalk')

    def evaluate(predict):
        metric = IoUMetric(iou_metrics=['mIoU'])
        metric.dataset_meta = dataset.metainfo
        for idx in range(len(dataset)):
            gt = dataset[idx]['data_samples'].gt_sem_seg.data
            metric.process({}, [dict(pred_sem_seg=dict(data=predict(gt)),
                                     gt_sem_seg=dict(data=gt))])
        return metric.evaluate(len(dataset))['mIoU']

    assert evaluate(lambda gt: gt.clone()) == pytest.approx(100.0)
    assert evaluate(lambda gt: torch.where(gt == road, sidewalk, gt)) < 95


def test_rerun_skips_and_other_settings_rewrite(tmp_path):
    root = str(tmp_path / 'streets')
    settings = dict(num_train=3, num_val=2, seed=0, height=32, width=64)
    assert not generate_street_scenes(root, **settings)['skipped']
    assert generate_street_scenes(root, **settings)['skipped']
    fewer = dict(settings, num_train=2, seed=1)
    assert not generate_street_scenes(root, **fewer)['skipped']
    assert len(files(root, 'train', IMG_SUFFIX)) == len(files(root, 'train', SEG_SUFFIX)) == 2


def test_same_seed_gives_the_same_files(small_streets_root, tmp_path):
    again, other = str(tmp_path / 'again'), str(tmp_path / 'other')
    generate_street_scenes(again, num_train=0, num_val=COUNTS['val'], seed=0, **SIZE)
    generate_street_scenes(other, num_train=0, num_val=COUNTS['val'], seed=1, **SIZE)
    for suffix, read in ((SEG_SUFFIX, read_label), (IMG_SUFFIX, cv2.imread)):
        reference, same, different = ([read(p) for p in files(root, 'val', suffix)]
                                      for root in (small_streets_root, again, other))
        assert len(reference) == len(same) == len(different) == COUNTS['val']
        assert all(np.array_equal(a, b) for a, b in zip(reference, same))
        assert not any(np.array_equal(a, b) for a, b in zip(reference, different))


@pytest.fixture
def corrupted_root(small_streets_root, tmp_path):
    """A copy of the fixture set to corrupt, with its sorted val image and label paths."""
    root = str(tmp_path / 'copy')
    shutil.copytree(small_streets_root, root)
    return root, files(root, 'val', IMG_SUFFIX), files(root, 'val', SEG_SUFFIX)


def write_label_ids(path, ids):
    label = read_label(path)
    label[:len(ids), 0] = ids
    cv2.imwrite(path, label)


def test_checker_accepts_the_generated_set(small_streets_root):
    for split in ('train', 'val'):
        assert check_cityscapes_pairs(*split_dirs(small_streets_root, split)) == COUNTS[split]
    checked, plain = checked_dataset(small_streets_root), mmseg_dataset(small_streets_root)
    assert isinstance(checked, CheckedCityscapesDataset)
    assert checked.data_list == plain.data_list and len(checked) == COUNTS['val']


def test_label_ids_instead_of_train_ids_are_refused(corrupted_root):
    root, _, labels = corrupted_root
    write_label_ids(labels[2], [19, 33, 7])
    with pytest.raises(CityscapesLabelError) as info:
        check_cityscapes_pairs(*split_dirs(root))
    message = str(info.value)
    assert f'{labels[2]}: contains ids [19, 33] outside 0-18 and 255' in message
    assert 'label ids, not train ids' in message and 'createTrainIdLabelImgs' in message
    assert labels[1] not in message and '1 invalid' in message


def test_missing_label_is_refused_naming_the_image(corrupted_root):
    root, images, labels = corrupted_root
    os.remove(labels[0])
    with pytest.raises(CityscapesLabelError,
                       match=re.escape(f'{images[0]}: no label image; expected {labels[0]}')):
        check_cityscapes_pairs(*split_dirs(root))


def test_missing_image_is_refused_naming_the_label(corrupted_root):
    root, images, labels = corrupted_root
    os.remove(images[-1])
    with pytest.raises(CityscapesLabelError,
                       match=re.escape(f'{labels[-1]}: no image; expected {images[-1]}')):
        check_cityscapes_pairs(*split_dirs(root))


def test_colour_label_image_is_refused(corrupted_root):
    root, _, labels = corrupted_root
    cv2.imwrite(labels[1], cv2.cvtColor(read_label(labels[1]), cv2.COLOR_GRAY2BGR))
    with pytest.raises(CityscapesLabelError, match=re.escape(
            f'{labels[1]}: has 3 channels; labelTrainIds images are single-channel')):
        check_cityscapes_pairs(*split_dirs(root))


def test_label_of_another_size_is_refused(corrupted_root):
    root, images, labels = corrupted_root
    cv2.imwrite(labels[3], read_label(labels[3])[:32])
    with pytest.raises(CityscapesLabelError, match=re.escape(
            f'{labels[3]}: is 128x32 pixels but its image {images[3]} is 128x64')):
        check_cityscapes_pairs(*split_dirs(root))


def test_errors_are_collected_up_to_max_errors(corrupted_root):
    root, _, labels = corrupted_root
    for path in labels[:4]:
        write_label_ids(path, [40])
    with pytest.raises(CityscapesLabelError) as info:
        check_cityscapes_pairs(*split_dirs(root), max_errors=2)
    message = str(info.value)
    assert '2 invalid' in message and message.endswith('... and more')
    assert labels[0] in message and labels[1] in message and labels[2] not in message
    assert 'label ids, not train ids' not in message  # 40 is no Cityscapes label id


def test_empty_directory_is_refused(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'labels').mkdir()
    with pytest.raises(CityscapesLabelError,
                       match=f"no images ending in '{IMG_SUFFIX}' found under .*images"):
        check_cityscapes_pairs(str(tmp_path / 'images'), str(tmp_path / 'labels'))
    with pytest.raises(CityscapesLabelError, match='label directory .*missing does not exist'):
        check_cityscapes_pairs(str(tmp_path / 'images'), str(tmp_path / 'missing'))


def test_checked_dataset_refuses_a_corrupted_copy(corrupted_root):
    root, _, labels = corrupted_root
    write_label_ids(labels[4], [33])
    assert len(mmseg_dataset(root)) == COUNTS['val']  # mmseg's own class takes it
    with pytest.raises(CityscapesLabelError, match=re.escape(labels[4])):
        checked_dataset(root)
    with pytest.raises(CityscapesLabelError, match=re.escape(labels[4])):
        CheckedCityscapesDataset(**dataset_args(root))


def test_make_data_cli_writes_segmentation(tmp_path):
    out = str(tmp_path / 'streets')
    result = subprocess.run(
        [sys.executable, 'tools/make_data.py', 'segmentation', '--out', out, '--train', '2',
         '--val', '1', '--height', '32', '--width', '64'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Cityscapes-Streets' in result.stdout and 'written' in result.stdout
    assert check_cityscapes_pairs(*split_dirs(out, 'train')) == 2
    assert check_cityscapes_pairs(*split_dirs(out, 'val')) == 1
    assert read_label(files(out, 'val', SEG_SUFFIX)[0]).shape == (32, 64)
