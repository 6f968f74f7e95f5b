from .base import BaseWeighting
from .meta_weight_net import MetaWeightNet
from .static import (ConfidenceWeighting, EntropyWeighting, FixedWeighting,
                     UniformWeighting)

__all__ = [
    'BaseWeighting', 'UniformWeighting', 'FixedWeighting', 'EntropyWeighting',
    'ConfidenceWeighting', 'MetaWeightNet'
]
