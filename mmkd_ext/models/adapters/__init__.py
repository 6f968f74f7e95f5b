from .conv_adapter import ConvAdapter
from .identity import IdentityAdapter
from .linear_adapter import LinearAdapter
from .token_adapter import TokenAdapter

#: The adapter the distiller builds for each feature kind when the config leaves
#: ``feature_kd.adapter`` unset.
DEFAULT_ADAPTERS = dict(map='ConvAdapter', tokens='TokenAdapter', vector='LinearAdapter')

__all__ = ['ConvAdapter', 'IdentityAdapter', 'LinearAdapter', 'TokenAdapter',
           'DEFAULT_ADAPTERS']
