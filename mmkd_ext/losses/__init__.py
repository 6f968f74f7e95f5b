from .feature_mse import FeatureMSE
from .kl_divergence import KLDivergence

__all__ = ['KLDivergence', 'FeatureMSE']
