from .channel_wise import ChannelWiseDivergence
from .feature_mse import FeatureMSE
from .kl_divergence import KLDivergence, SigmoidKLDivergence

__all__ = ['KLDivergence', 'SigmoidKLDivergence', 'ChannelWiseDivergence', 'FeatureMSE']
