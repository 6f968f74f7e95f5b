from .base import BaseTaskView
from .classification import ClassificationView
from .detection import DenseDetectionView

__all__ = ['BaseTaskView', 'ClassificationView', 'DenseDetectionView']
