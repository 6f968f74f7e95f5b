from .shapes import CLASSES as SHAPES10_CLASSES
from .shapes import generate_shapes10

__all__ = ['generate_shapes10', 'SHAPES10_CLASSES']
