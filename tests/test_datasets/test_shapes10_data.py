"""The generated Shapes-10 set: deterministic, real mmpretrain format."""
import hashlib
import os
import os.path as osp

import pytest

from mmkd_ext.synthetic_data import SHAPES10_CLASSES, generate_shapes10


def digest(root):
    h = hashlib.sha1()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith('.png'):
                with open(osp.join(folder, name), 'rb') as f:
                    h.update(f.read())
    return h.hexdigest()


def test_deterministic_by_seed_and_idempotent(tmp_path):
    a = generate_shapes10(str(tmp_path / 'a'), 30, 10, seed=3)
    b = generate_shapes10(str(tmp_path / 'b'), 30, 10, seed=3)
    c = generate_shapes10(str(tmp_path / 'c'), 30, 10, seed=4)
    assert not a['skipped'] and not b['skipped']
    assert digest(tmp_path / 'a') == digest(tmp_path / 'b') != digest(tmp_path / 'c')
    assert generate_shapes10(str(tmp_path / 'a'), 30, 10, seed=3)['skipped']


def test_mmpretrain_custom_dataset_reads_it(shapes_root):
    from mmpretrain.datasets import CustomDataset
    train = CustomDataset(data_root=shapes_root, data_prefix='train', pipeline=[])
    val = CustomDataset(data_root=shapes_root, data_prefix='val', pipeline=[])
    assert len(train) == 160 and len(val) == 80
    assert len(train.metainfo['classes']) == len(SHAPES10_CLASSES) == 10
    labels = [train.get_data_info(i)['gt_label'] for i in range(len(train))]
    assert sorted(set(labels)) == list(range(10))
    assert train.metainfo['classes'][3] == '03_frame'


@pytest.mark.parametrize('cls', range(10))
def test_every_class_draws_a_visible_shape(cls):
    import numpy as np
    from mmkd_ext.synthetic_data.shapes10 import render_image
    img = render_image(cls, np.random.default_rng(cls))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert img.std() > 10


def test_an_empty_folder_or_a_corrupt_image_is_named(tmp_path):
    from mmpretrain.datasets import CustomDataset
    os.makedirs(tmp_path / 'empty' / 'train')
    with pytest.raises(RuntimeError, match=r'Found 0 files in subfolders of.*empty/train'):
        CustomDataset(data_root=str(tmp_path / 'empty'), data_prefix='train', pipeline=[])
    generate_shapes10(str(tmp_path / 's'), num_train=10, num_val=10, seed=0)
    broken = tmp_path / 's' / 'train' / '00_disc' / '000000.png'
    broken.write_bytes(b'not a png')
    dataset = CustomDataset(data_root=str(tmp_path / 's'), data_prefix='train',
                            pipeline=[dict(type='LoadImageFromFile')])
    index = next(i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path']
                 == str(broken))
    with pytest.raises(Exception, match=f'failed to load image: {broken}'):
        dataset[index]
