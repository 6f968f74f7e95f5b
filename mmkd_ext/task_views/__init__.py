from .base import BaseTaskView
from .classification import ClassificationView

__all__ = ['BaseTaskView', 'ClassificationView']
