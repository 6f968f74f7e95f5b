from .feature_layout import (FEATURE_KINDS, channels_first, feature_kind,
                             locations, pool_locations)

__all__ = ['FEATURE_KINDS', 'channels_first', 'feature_kind', 'locations', 'pool_locations']
