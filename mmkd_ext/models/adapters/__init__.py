from .conv_adapter import ConvAdapter
from .identity import IdentityAdapter

__all__ = ['ConvAdapter', 'IdentityAdapter']
