from .cityscapes_check import (CheckedCityscapesDataset, CityscapesLabelError,
                               check_cityscapes_pairs)
from .cityscapes_streets import CITYSCAPES_CLASSES, generate_street_scenes
from .coco_check import CheckedCocoDataset, CocoAnnotationError, check_coco_annotations
from .coco_shapes import CATEGORIES as COCO_SHAPES_CATEGORIES
from .coco_shapes import generate_coco_shapes
from .shapes import CLASSES as SHAPES10_CLASSES
from .shapes import generate_shapes10

__all__ = [
    'generate_shapes10', 'SHAPES10_CLASSES', 'generate_coco_shapes', 'COCO_SHAPES_CATEGORIES',
    'check_coco_annotations', 'CheckedCocoDataset', 'CocoAnnotationError',
    'generate_street_scenes', 'CITYSCAPES_CLASSES', 'check_cityscapes_pairs',
    'CheckedCityscapesDataset', 'CityscapesLabelError'
]
