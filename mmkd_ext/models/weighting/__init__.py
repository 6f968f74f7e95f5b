from .base import BaseWeighting
from .meta_weight_net import MetaWeightNet
from .rl_agent import RLAgentWeighting
from .rl_policies import DeterministicPolicy, DirichletPolicy
from .static import (ConfidenceWeighting, EntropyWeighting, FixedWeighting,
                     UniformWeighting)

__all__ = [
    'BaseWeighting', 'UniformWeighting', 'FixedWeighting', 'EntropyWeighting',
    'ConfidenceWeighting', 'MetaWeightNet', 'RLAgentWeighting', 'DeterministicPolicy',
    'DirichletPolicy'
]
