"""Registered datasets: the libraries' COCO and Cityscapes datasets with their files
checked on load.

Importing this package imports mmdet and mmseg; ``import mmkd_ext`` does not load
it: the ``DATASETS`` registry imports it the first time a config names one of its
types (``mmkd_ext.CheckedCocoDataset``, ``mmkd_ext.CheckedCityscapesDataset``).
"""
from .cityscapes_check import (CheckedCityscapesDataset, CityscapesLabelError,
                               check_cityscapes_pairs)
from .coco_check import CheckedCocoDataset, CocoAnnotationError, check_coco_annotations

__all__ = [
    'check_coco_annotations', 'CheckedCocoDataset', 'CocoAnnotationError',
    'check_cityscapes_pairs', 'CheckedCityscapesDataset', 'CityscapesLabelError'
]
