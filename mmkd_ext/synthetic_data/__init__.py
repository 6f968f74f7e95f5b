"""Generators of small datasets in the real formats, for the demo, the benchmark and
the tests: Shapes-10 (mmpretrain's folder format), Shapes-COCO (COCO JSON and
images) and Cityscapes-Streets (``leftImg8bit``/``gtFine`` trees).

Each generator is idempotent (a second call with the same settings skips the
work). ``import mmkd_ext`` does not load this package.
"""
from .cityscapes_streets import CITYSCAPES_CLASSES, generate_street_scenes
from .coco_shapes import CATEGORIES as COCO_SHAPES_CATEGORIES
from .coco_shapes import generate_coco_shapes
from .shapes10 import CLASSES as SHAPES10_CLASSES
from .shapes10 import generate_shapes10

__all__ = [
    'generate_shapes10', 'SHAPES10_CLASSES', 'generate_coco_shapes', 'COCO_SHAPES_CATEGORIES',
    'generate_street_scenes', 'CITYSCAPES_CLASSES'
]
