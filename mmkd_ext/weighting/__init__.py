from .base import BaseWeighting
from .static import (ConfidenceWeighting, EntropyWeighting, FixedWeighting,
                     UniformWeighting)

__all__ = [
    'BaseWeighting', 'UniformWeighting', 'FixedWeighting', 'EntropyWeighting',
    'ConfidenceWeighting'
]
