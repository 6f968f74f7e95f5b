from .base import BaseTaskView
from .classification import ClassificationView
from .detection import DenseDetectionView
from .segmentation import SegmentationView

__all__ = ['BaseTaskView', 'ClassificationView', 'DenseDetectionView', 'SegmentationView']
