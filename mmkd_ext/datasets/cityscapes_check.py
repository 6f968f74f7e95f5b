"""Checks of a Cityscapes-layout segmentation set, and a ``CityscapesDataset`` that
runs them first.

mmseg's ``CityscapesDataset`` lists the images and assumes that each has its label
image: a missing label surfaces as a file-not-found error in a data-loader worker, and
a label image of the wrong kind (Cityscapes label ids instead of train ids, a
colour-coded ``*_gtFine_color.png``) trains on wrong targets without any error.
:func:`check_cityscapes_pairs` refuses such a set instead, with an error that names
the files.
"""
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np
from mmseg.datasets import CityscapesDataset
from PIL import Image

from mmkd_ext.registry import DATASETS

#: Largest Cityscapes label id (labelIds images hold 0-33).
_MAX_LABEL_ID = 33
_CONVERT_HINT = ("these look like Cityscapes label ids, not train ids; convert with "
                 "cityscapesscripts' createTrainIdLabelImgs or mmseg's "
                 'tools/dataset_converters/cityscapes.py')


class CityscapesLabelError(ValueError):
    """A Cityscapes-layout image / label set is incomplete or holds invalid labels."""


def _files_with_suffix(directory: str, suffix: str) -> Iterator[str]:
    """Paths relative to ``directory`` of the files below it ending in ``suffix``,
    with the suffix removed."""
    for folder, _, names in os.walk(directory, followlinks=True):
        for name in names:
            if name.endswith(suffix):
                yield osp.relpath(osp.join(folder, name[:-len(suffix)]), directory)


def _image_size(path: str) -> Optional[Tuple[int, int]]:
    """``(height, width)`` of the image at ``path`` from its header (``None`` if it
    cannot be read)."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, ValueError):
        return None


def _label_problem(seg_path: str, img_path: str, num_classes: int,
                   ignore_index: int) -> Optional[str]:
    """What is wrong with the label image at ``seg_path`` (``None`` if nothing): it
    must be a single-channel unsigned-integer image of its image's size holding only
    ids ``0..num_classes - 1`` and ``ignore_index``."""
    label = cv2.imread(seg_path, cv2.IMREAD_UNCHANGED)
    if label is None:
        return f'{seg_path}: cannot be read as an image'
    if label.ndim == 3 and label.shape[2] > 1:
        return (f'{seg_path}: has {label.shape[2]} channels; labelTrainIds images are '
                'single-channel train ids (was a colour-coded *_gtFine_color.png given '
                'by mistake?)')
    if not np.issubdtype(label.dtype, np.unsignedinteger):
        return f'{seg_path}: {label.dtype} pixels; label images hold unsigned integer ids'
    size = _image_size(img_path)
    if size is None:
        return f'{img_path}: cannot be read as an image'
    if label.shape[:2] != size:
        return (f'{seg_path}: is {label.shape[1]}x{label.shape[0]} pixels but its image '
                f'{img_path} is {size[1]}x{size[0]}')
    ids = np.flatnonzero(np.bincount(label.ravel()))
    bad = [int(i) for i in ids if i >= num_classes and i != ignore_index]
    if bad:
        hint = f': {_CONVERT_HINT}' if max(bad) <= _MAX_LABEL_ID else ''
        return (f'{seg_path}: contains ids {bad} outside 0-{num_classes - 1} and '
                f'{ignore_index}{hint}')
    return None


def check_cityscapes_pairs(img_dir: str, seg_dir: str, img_suffix: str = '_leftImg8bit.png',
                           seg_suffix: str = '_gtFine_labelTrainIds.png',
                           num_classes: int = 19, ignore_index: int = 255,
                           max_errors: int = 10) -> int:
    """Check the image / label pairs below ``img_dir`` and ``seg_dir``; returns the
    number of pairs.

    Checked: every image (a file below ``img_dir`` ending in ``img_suffix``, searched
    recursively) has its label image at the same relative path below ``seg_dir`` with
    ``seg_suffix`` instead, and every label image its image; each label image is
    readable, single-channel, of its image's height and width, and holds only ids in
    ``0..num_classes - 1`` or ``ignore_index``.

    Raises:
        CityscapesLabelError: naming the directories and up to ``max_errors`` files.
    """
    for kind, directory in (('image', img_dir), ('label', seg_dir)):
        if not osp.isdir(directory):
            raise CityscapesLabelError(f'{kind} directory {directory} does not exist; check '
                                       "the dataset's data_root and data_prefix.")
    images = set(_files_with_suffix(img_dir, img_suffix))
    if not images:
        raise CityscapesLabelError(f"no images ending in '{img_suffix}' found under "
                                   f'{img_dir}; check data_prefix and img_suffix.')
    labels = set(_files_with_suffix(seg_dir, seg_suffix))

    errors: List[str] = []
    for stem in sorted(images | labels):
        img_path = osp.join(img_dir, stem + img_suffix)
        seg_path = osp.join(seg_dir, stem + seg_suffix)
        if stem not in labels:
            errors.append(f'{img_path}: no label image; expected {seg_path}')
        elif stem not in images:
            errors.append(f'{seg_path}: no image; expected {img_path}')
        else:
            problem = _label_problem(seg_path, img_path, num_classes, ignore_index)
            if problem is not None:
                errors.append(problem)
        if len(errors) > max_errors:
            break
    if errors:
        shown = '\n  '.join(errors[:max_errors])
        more = '' if len(errors) <= max_errors else '\n  ... and more'
        raise CityscapesLabelError(
            f'{img_dir} / {seg_dir}: {len(errors[:max_errors])} invalid image / label '
            f'pair(s); fix or remove them:\n  {shown}{more}')
    return len(images)


@DATASETS.register_module()
class CheckedCityscapesDataset(CityscapesDataset):
    """mmseg's ``CityscapesDataset`` that first checks every image / label pair below
    its ``data_prefix`` directories with :func:`check_cityscapes_pairs` and refuses a
    set with missing files or invalid label images, with an error naming them. Same
    arguments as ``CityscapesDataset``; without a ``seg_map_path`` (unlabelled test
    images) there is nothing to check."""

    def load_data_list(self) -> List[dict]:
        seg_dir = self.data_prefix.get('seg_map_path')
        if seg_dir:
            # With a subset of the classes, the files still hold the full set's ids
            # (``label_map`` maps every one of them).
            num_classes = len(self.label_map) if self.label_map else len(
                self.metainfo['classes'])
            check_cityscapes_pairs(self.data_prefix['img_path'], seg_dir, self.img_suffix,
                                   self.seg_map_suffix, num_classes, self.ignore_index)
        return super().load_data_list()
