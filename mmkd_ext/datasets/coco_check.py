"""Checks of a COCO annotation file, and a ``CocoDataset`` that runs them first.

mmdet's ``CocoDataset`` silently drops records it cannot use (a box of zero size, a
category id not in the file); a distillation run then trains on less than the user
thinks. :func:`check_coco_annotations` refuses such a file instead, with an error that
names the file and the record.
"""
import json
import math
import os.path as osp
from typing import List, Optional

from mmdet.datasets import CocoDataset

from mmkd_ext.registry import DATASETS


class CocoAnnotationError(ValueError):
    """A COCO annotation file is corrupt or inconsistent."""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_coco_annotations(ann_file: str, img_dir: Optional[str] = None,
                           max_errors: int = 10) -> dict:
    """Load ``ann_file`` and check it; returns the parsed dict.

    Checked: valid JSON with ``images``, ``annotations`` and ``categories``; unique
    image, annotation and category ids; every image with a ``file_name`` and positive
    ``width``/``height`` (and, with ``img_dir``, present on disk); every annotation
    with a known ``image_id`` and ``category_id``, a ``bbox`` of four finite numbers
    with positive width and height inside its image (1 px tolerance), a positive
    ``area`` and ``iscrowd`` 0 or 1.

    Raises:
        CocoAnnotationError: naming the file and up to ``max_errors`` records.
    """
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CocoAnnotationError(f'COCO annotation file {ann_file} does not exist; check '
                                  "the dataset's data_root and ann_file.") from None
    except json.JSONDecodeError as e:
        raise CocoAnnotationError(f'{ann_file} is not valid JSON ({e}); the file is '
                                  'corrupt or truncated: regenerate or re-download it.') from None
    missing = [k for k in ('images', 'annotations', 'categories')
               if not isinstance(data, dict) or not isinstance(data.get(k), list)]
    if missing:
        raise CocoAnnotationError(f'{ann_file} is not a COCO instances file: no {missing} list.')

    errors: List[str] = []
    category_ids = set()
    for cat in data['categories']:
        if cat.get('id') in category_ids:
            errors.append(f'category {cat!r}: duplicate id')
        category_ids.add(cat.get('id'))
    images = {}
    for idx, img in enumerate(data['images']):
        where = f'images[{idx}] (id {img.get("id")!r}, file {img.get("file_name")!r})'
        if img.get('id') in images:
            errors.append(f'{where}: duplicate image id')
        if not img.get('file_name'):
            errors.append(f'{where}: no file_name')
        elif img_dir is not None and not osp.isfile(osp.join(img_dir, img['file_name'])):
            errors.append(f'{where}: image file missing from {img_dir}')
        if not (_is_number(img.get('width')) and _is_number(img.get('height'))
                and img['width'] > 0 and img['height'] > 0):
            errors.append(f'{where}: width/height must be positive numbers')
        images[img.get('id')] = img
    ann_ids = set()
    for idx, ann in enumerate(data['annotations']):
        where = f'annotations[{idx}] (id {ann.get("id")!r}, image_id {ann.get("image_id")!r})'
        if ann.get('id') in ann_ids:
            errors.append(f'{where}: duplicate annotation id')
        ann_ids.add(ann.get('id'))
        img = images.get(ann.get('image_id'))
        if img is None:
            errors.append(f'{where}: image_id not among the images')
        if ann.get('category_id') not in category_ids:
            errors.append(f'{where}: unknown category_id {ann.get("category_id")!r} '
                          f'(categories: {sorted(category_ids, key=str)})')
        bbox = ann.get('bbox')
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
            errors.append(f'{where}: bbox must be [x, y, w, h] numbers, got {bbox!r}')
        elif bbox[2] <= 0 or bbox[3] <= 0:
            errors.append(f'{where}: bbox {bbox} has a non-positive width or height')
        elif img is not None and _is_number(img.get('width')) and (
                bbox[0] < -1 or bbox[1] < -1 or bbox[0] + bbox[2] > img['width'] + 1
                or bbox[1] + bbox[3] > img['height'] + 1):
            errors.append(f'{where}: bbox {bbox} lies outside its '
                          f'{img["width"]}x{img["height"]} image')
        if not (_is_number(ann.get('area')) and ann['area'] > 0):
            errors.append(f'{where}: area must be a positive number, got {ann.get("area")!r}')
        if ann.get('iscrowd', 0) not in (0, 1):
            errors.append(f'{where}: iscrowd must be 0 or 1, got {ann.get("iscrowd")!r}')
        if len(errors) > max_errors:
            break
    if errors:
        shown = '\n  '.join(errors[:max_errors])
        more = '' if len(errors) <= max_errors else f'\n  ... and more'
        raise CocoAnnotationError(f'{ann_file}: {len(errors[:max_errors])} invalid record(s); '
                                  f'fix or remove them:\n  {shown}{more}')
    return data


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` that first checks its annotation file with
    :func:`check_coco_annotations` (image files included) and refuses a corrupt or
    inconsistent one with an error naming the file and the records, instead of
    silently dropping them. Same arguments as ``CocoDataset``."""

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get('img')
        check_coco_annotations(self.ann_file, img_dir if img_dir and osp.isdir(img_dir) else None)
        return super().load_data_list()
