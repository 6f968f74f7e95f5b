"""Shapes-COCO: a procedural detection set written in the real COCO layout.

Each square image holds 2-6 objects of 8 shape categories (the Shapes-10 shapes
without the stripes) at radii from 6 to 36 pixels, over a tinted background with
clutter strokes and noise. Later objects may overlap earlier ones (occlusion):
an object's ``bbox`` is its full extent, its ``area`` the pixels left visible,
and objects less than a quarter visible are not drawn. Layout (what mmdet's
``CocoDataset`` and ``CocoMetric`` read)::

    root/annotations/instances_train2017.json
    root/annotations/instances_val2017.json
    root/train2017/<image id>.jpg
    root/val2017/<image id>.jpg
    root/meta.json        # generator settings; a rerun with equal settings skips
"""
import json
import os
import os.path as osp
from typing import Dict

import cv2
import numpy as np

from .io import write_once
from .shapes10 import CLASSES as SHAPE_NAMES
from .shapes10 import draw_background, draw_shape

#: Category names, COCO ids 1..8 (index into the Shapes-10 shape vocabulary).
CATEGORIES = ('disc', 'ring', 'square', 'frame', 'triangle', 'plus', 'cross', 'checker')
_SHAPE_INDEX = [SHAPE_NAMES.index(name) for name in CATEGORIES]


def render_scene(rng: np.random.Generator, size: int, max_objects: int = 6,
                 min_visible: float = 0.25):
    """One image and its objects.

    Returns:
        ``(image [size, size, 3] uint8 BGR, objects)``, each object a dict with
        ``category_id`` (1-based), ``bbox`` ``[x, y, w, h]`` (full extent) and
        ``area`` (visible pixels).
    """
    img, tint = draw_background(rng, size, max_strokes=6)
    full, visible, labels = [], [], []
    for _ in range(rng.integers(2, max_objects + 1)):
        label = int(rng.integers(len(CATEGORIES)))
        r = float(np.exp(rng.uniform(np.log(6), np.log(min(36, size / 4)))))
        cx, cy = rng.uniform(r, size - r, 2)
        candidate = img.copy()
        mask = draw_shape(candidate, _SHAPE_INDEX[label], rng, cx, cy, r, tint)
        uncovered = [v & ~mask for v in visible]
        if not mask.any() or any(u.sum() < min_visible * f.sum()
                                 for u, f in zip(uncovered, full)):
            continue  # empty, or would hide most of an earlier object: left out
        img = candidate
        full.append(mask)
        visible = uncovered + [mask]
        labels.append(label)
    img = img + rng.normal(0, rng.uniform(2, 8), img.shape)

    objects = []
    for label, extent, seen in zip(labels, full, visible):
        ys, xs = np.nonzero(extent)
        x0, y0 = int(xs.min()), int(ys.min())
        objects.append(dict(category_id=label + 1,
                            bbox=[x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                            area=int(seen.sum())))
    return np.clip(img, 0, 255).astype(np.uint8), objects


def generate_coco_shapes(root: str, num_train: int = 800, num_val: int = 200,
                         seed: int = 0, image_size: int = 160) -> Dict:
    """Write Shapes-COCO under ``root``; skip if already written with these settings.

    Returns:
        The settings stored in ``root/meta.json``, with ``skipped=True`` when the
        dataset was already there.
    """
    meta = dict(name='coco_shapes', categories=list(CATEGORIES), num_train=num_train,
                num_val=num_val, seed=seed, image_size=image_size, format=1)
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(CATEGORIES)]

    def write():
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        next_ann_id = 1
        for split, count, split_seed in (('train2017', num_train, seed),
                                         ('val2017', num_val, seed + 1)):
            rng = np.random.default_rng(split_seed)
            os.makedirs(osp.join(root, split), exist_ok=True)
            images, annotations = [], []
            for idx in range(count):
                image_id = idx + 1
                img, objects = render_scene(rng, image_size)
                file_name = f'{image_id:012d}.jpg'
                cv2.imwrite(osp.join(root, split, file_name), img,
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
                images.append(dict(id=image_id, file_name=file_name, width=image_size,
                                   height=image_size))
                for obj in objects:
                    annotations.append(dict(obj, id=next_ann_id, image_id=image_id,
                                            iscrowd=0))
                    next_ann_id += 1
            with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
                json.dump(dict(info=dict(description='Shapes-COCO (generated)'), licenses=[],
                               images=images, annotations=annotations,
                               categories=categories), f)

    return write_once(root, meta, write)
