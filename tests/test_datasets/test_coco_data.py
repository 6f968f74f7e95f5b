"""Shapes-COCO: the generated detection set in the real COCO layout, and the checks
that refuse a corrupt annotation file."""
import copy
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch

from mmkd_ext.datasets import CocoAnnotationError
from mmkd_ext.synthetic_data import COCO_SHAPES_CATEGORIES, generate_coco_shapes

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs')]


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco_shapes'))
    generate_coco_shapes(root, num_train=24, num_val=12, seed=0, image_size=128)
    return root


def load(root, split='val2017'):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def build_dataset(root, split='val2017', checked=False, ann_file=None):
    from mmdet.registry import DATASETS
    import mmkd_ext  # noqa: F401
    return DATASETS.build(dict(
        _scope_='mmdet',
        type='mmkd_ext.CheckedCocoDataset' if checked else 'CocoDataset', data_root=root,
        ann_file=ann_file or f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'{split}/'), metainfo=dict(classes=COCO_SHAPES_CATEGORIES),
        pipeline=PIPELINE, test_mode=True))


def test_layout_is_deterministic_and_idempotent(tmp_path, coco_root):
    for split in ('train2017', 'val2017'):
        assert osp.isfile(osp.join(coco_root, 'annotations', f'instances_{split}.json'))
        assert len(os.listdir(osp.join(coco_root, split))) == {'train2017': 24, 'val2017': 12}[split]
    again = generate_coco_shapes(str(tmp_path), num_train=24, num_val=12, seed=0, image_size=128)
    assert not again['skipped'] and load(str(tmp_path)) == load(coco_root)
    assert generate_coco_shapes(coco_root, 24, 12, seed=0, image_size=128)['skipped']


def test_records_are_valid_coco(coco_root):
    data = load(coco_root, 'train2017')
    assert [c['id'] for c in data['categories']] == list(range(1, 9))
    sizes = {img['id']: (img['width'], img['height']) for img in data['images']}
    per_image = {}
    for ann in data['annotations']:
        x, y, w, h = ann['bbox']
        width, height = sizes[ann['image_id']]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert 0 < ann['area'] <= w * h and ann['iscrowd'] == 0
        per_image[ann['image_id']] = per_image.get(ann['image_id'], 0) + 1
    assert len({a['id'] for a in data['annotations']}) == len(data['annotations'])
    assert max(per_image.values()) >= 4 and min(per_image.values()) >= 1
    assert len({a['category_id'] for a in data['annotations']}) >= 6
    scales = [max(a['bbox'][2:]) for a in data['annotations']]
    assert min(scales) < 20 and max(scales) > 45  # small and large objects


def test_mmdet_coco_dataset_reads_every_record(coco_root):
    dataset = build_dataset(coco_root)
    data = load(coco_root)
    assert len(dataset) == len(data['images'])
    assert sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset))) \
        == len(data['annotations'])
    sample = dataset[0]['data_samples']
    first = [a for a in data['annotations'] if a['image_id'] == 1]
    x, y, w, h = first[0]['bbox']
    assert sample.gt_instances.bboxes.tensor[0].tolist() == [x, y, x + w, y + h]
    assert sample.gt_instances.labels[0].item() == first[0]['category_id'] - 1


def test_coco_metric_scores_the_ground_truth_as_perfect(coco_root):
    """mmdet's CocoMetric (pycocotools) evaluates the file: GT boxes as detections
    give bbox mAP 1, shifted boxes much less."""
    from mmdet.evaluation import CocoMetric
    dataset = build_dataset(coco_root)

    def evaluate(shift):
        metric = CocoMetric(ann_file=osp.join(coco_root, 'annotations/instances_val2017.json'),
                            metric='bbox')
        metric.dataset_meta = dataset.metainfo
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            boxes = torch.tensor([i['bbox'] for i in info['instances']], dtype=torch.float32)
            metric.process({}, [dict(img_id=info['img_id'], ori_shape=(128, 128),
                                     pred_instances=dict(
                                         bboxes=boxes + shift, scores=torch.ones(len(boxes)),
                                         labels=torch.tensor([i['bbox_label'] for i in info['instances']])))])
        return metric.evaluate(len(dataset))['coco/bbox_mAP']

    assert evaluate(0.0) == pytest.approx(1.0, abs=1e-3)
    assert evaluate(6.0) < 0.8


def corrupt(coco_root, tmp_path, edit):
    data = copy.deepcopy(load(coco_root))
    edit(data)
    path = tmp_path / 'instances_bad.json'
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize('edit, message', [
    (lambda d: d['annotations'][3]['bbox'].__setitem__(2, 0), r'annotations\[3\].*non-positive'),
    (lambda d: d['annotations'][5].__setitem__('category_id', 42),
     r'annotations\[5\].*unknown category_id 42'),
    (lambda d: d['images'][2].__setitem__('file_name', 'gone.jpg'),
     r"images\[2\].*'gone.jpg'.*missing"),
    (lambda d: d['annotations'][0].__setitem__('image_id', 999), r'annotations\[0\].*image_id'),
    (lambda d: d['annotations'][1]['bbox'].__setitem__(0, 500), r'annotations\[1\].*outside'),
])
def test_corrupt_annotations_are_refused_naming_file_and_record(edit, message, coco_root,
                                                                 tmp_path):
    path = corrupt(coco_root, tmp_path, edit)
    with pytest.raises(CocoAnnotationError, match=message) as info:
        build_dataset(coco_root, checked=True, ann_file=path)
    assert path in str(info.value)


def test_truncated_json_is_refused(coco_root, tmp_path):
    path = tmp_path / 'instances_cut.json'
    text = open(osp.join(coco_root, 'annotations/instances_val2017.json')).read()
    path.write_text(text[:len(text) // 2])
    with pytest.raises(CocoAnnotationError, match='not valid JSON'):
        build_dataset(coco_root, checked=True, ann_file=str(path))


def test_checked_dataset_reads_a_valid_file_like_mmdet(coco_root):
    checked, plain = build_dataset(coco_root, checked=True), build_dataset(coco_root)
    assert len(checked) == len(plain)
    assert np.array_equal(checked.get_data_info(3)['instances'][0]['bbox'],
                          plain.get_data_info(3)['instances'][0]['bbox'])
