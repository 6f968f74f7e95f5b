from .base import BaseTaskView
from .classification import ClassificationView
from .detection import DenseDetectionView, default_detection_view
from .detr import DETRView
from .segmentation import SegmentationView

__all__ = [
    'BaseTaskView', 'ClassificationView', 'DenseDetectionView', 'DETRView', 'SegmentationView',
    'default_detection_view'
]
