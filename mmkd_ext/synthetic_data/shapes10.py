"""Shapes-10: a procedural 10-class image set in mmpretrain's folder-per-class format.

Each 32x32 image shows one shape of its class (disc, ring, square, frame, triangle,
plus, cross, horizontal / vertical stripes, checker) at a random position, scale,
small rotation and colour, over a tinted background with clutter strokes, an
occasional occluding patch, and Gaussian noise. Small CNNs learn it well above
chance within a few epochs, and bigger ones learn it better, which is what a
distillation demo needs.

Layout written (the one ``mmpretrain.datasets.CustomDataset`` reads)::

    root/train/<NN_class>/<index>.png
    root/val/<NN_class>/<index>.png
    root/meta.json           # generator settings; a rerun with equal settings skips
"""
import os
import os.path as osp
from typing import Dict, Tuple

import cv2
import numpy as np

from .io import write_once

CLASSES = ('disc', 'ring', 'square', 'frame', 'triangle', 'plus', 'cross',
           'h_stripes', 'v_stripes', 'checker')


def shape_mask(cls: int, u: np.ndarray, v: np.ndarray, r: float, freq: float) -> np.ndarray:
    """Boolean mask of class ``cls`` in shape-centred coordinates ``u, v``."""
    au, av, rr = np.abs(u), np.abs(v), u * u + v * v
    box = (au < r) & (av < r)
    bar = r / 3.0
    if cls == 0:
        return rr < r * r
    if cls == 1:
        return (rr < r * r) & (rr > (0.55 * r) ** 2)
    if cls == 2:
        return box
    if cls == 3:
        return box & ~((au < 0.55 * r) & (av < 0.55 * r))
    if cls == 4:
        return (v < 0.8 * r) & (au < (v + r) * 0.55)
    if cls == 5:
        return ((au < bar) & (av < r)) | ((av < bar) & (au < r))
    if cls == 6:
        d1, d2 = np.abs(u - v) / np.sqrt(2), np.abs(u + v) / np.sqrt(2)
        return ((d1 < bar * 0.8) | (d2 < bar * 0.8)) & (rr < (1.2 * r) ** 2)
    if cls == 7:
        return box & (np.sin(v * freq) > 0)
    if cls == 8:
        return box & (np.sin(u * freq) > 0)
    return box & (np.sin(u * freq) * np.sin(v * freq) > 0)


def draw_background(rng: np.random.Generator, size: int,
                    max_strokes: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """A ``[size, size, 3]`` float background (a tint, a horizontal gradient and up
    to ``max_strokes`` thin clutter strokes of random colours) and its tint."""
    xx = np.mgrid[0:size, 0:size][1].astype(np.float32)
    tint = rng.uniform(20, 235, size=3)
    gradient = rng.uniform(-40, 40, size=3)[None, None] * (xx / size)[..., None]
    img = np.broadcast_to(tint, (size, size, 3)) + gradient
    for _ in range(rng.integers(0, max_strokes + 1)):
        p0, p1 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        stroke = np.zeros((size, size), np.uint8)
        cv2.line(stroke, tuple(int(c) for c in p0), tuple(int(c) for c in p1), 1, 1)
        img = np.where(stroke[..., None] > 0, rng.uniform(0, 255, 3), img)
    return img, tint


def draw_shape(img: np.ndarray, cls: int, rng: np.random.Generator, cx: float, cy: float,
               r: float, reference: np.ndarray) -> np.ndarray:
    """Paint a shape of class ``cls`` (radius ``r``, small random rotation) centred at
    ``(cx, cy)`` in a colour that contrasts with ``reference`` (a BGR triple);
    returns its boolean mask ``[H, W]``."""
    height, width = img.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(-0.3, 0.3)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    mask = shape_mask(cls, u, v, r, freq=rng.uniform(1.2, 1.8))
    colour = reference + rng.choice([-1, 1], 3) * rng.uniform(70, 140, 3)
    img[mask] = np.clip(colour, 0, 255)
    return mask


def render_image(cls: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One ``[size, size, 3]`` uint8 BGR image of class ``cls``."""
    img, tint = draw_background(rng, size)

    # The class shape.
    r = rng.uniform(6.5, 12.0)
    cx, cy = rng.uniform(r, size - r, 2)
    draw_shape(img, cls, rng, cx, cy, r, tint)

    # Occasional occluding patch.
    if rng.random() < 0.2:
        w, h = rng.integers(4, 10, 2)
        x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)

    img = img + rng.normal(0, rng.uniform(3, 14), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def generate_shapes10(root: str, num_train: int = 2000, num_val: int = 3000,
                      seed: int = 0, image_size: int = 32) -> Dict:
    """Write Shapes-10 under ``root`` (balanced classes); skip if already written.

    Returns:
        The settings stored in ``root/meta.json``, with ``skipped=True`` when the
        dataset was already there with the same settings.
    """
    meta = dict(name='shapes10', classes=list(CLASSES), num_train=num_train,
                num_val=num_val, seed=seed, image_size=image_size, format=1)

    def write():
        for split, count, split_seed in (('train', num_train, seed),
                                         ('val', num_val, seed + 1)):
            rng = np.random.default_rng(split_seed)
            folders = [osp.join(root, split, f'{i:02d}_{name}')
                       for i, name in enumerate(CLASSES)]
            for folder in folders:
                os.makedirs(folder, exist_ok=True)
            for idx in range(count):
                cls = idx % len(CLASSES)
                img = render_image(cls, rng, image_size)
                cv2.imwrite(osp.join(folders[cls], f'{idx:06d}.png'), img)

    return write_once(root, meta, write)
