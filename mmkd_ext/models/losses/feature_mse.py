import torch
import torch.nn as nn

from mmkd_ext.models.utils.feature_layout import locations
from mmkd_ext.registry import MODELS


@MODELS.register_module()
class FeatureMSE(nn.Module):
    """Per-sample mean squared error between two features.

    Args:
        normalize (bool): standardise each sample's feature per channel (zero mean,
            unit variance over its locations: H, W of a map, the N tokens) before
            the error: the Pearson-style feature KD (PKD) that ignores scale
            differences between teachers. A vector ``[B, C]`` has one location, so
            it is standardised over its C channels instead. Defaults to False.
        eps (float): added to the variance when normalising.

    Shapes:
        student, teacher: the same shape, channels first: ``[B, C, H, W]`` maps,
        ``[B, C, N]`` tokens, ``[B, C]`` vectors (any ``[B, ...]`` without
        ``normalize``). Returns ``[B]``: the mean over all non-batch dimensions.
    """

    def __init__(self, normalize: bool = False, eps: float = 1e-6):
        super().__init__()
        self.normalize = normalize
        self.eps = eps

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        # [B, C, L] over L; a vector [B, C] as [B, 1, C], over its channels.
        flat = locations(x) if x.dim() > 2 else x[:, None]
        mean = flat.mean(dim=2, keepdim=True)
        # rsqrt(var + eps), not 1 / (std + eps): the gradient of std is 0/0 on a
        # constant map (a dead channel), which turns every parameter NaN.
        var = flat.var(dim=2, keepdim=True, unbiased=False)
        return ((flat - mean) * torch.rsqrt(var + self.eps)).view_as(x)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape != teacher.shape:
            raise ValueError(
                f'Feature KD needs aligned features, got student {tuple(student.shape)} '
                f'and teacher {tuple(teacher.shape)}; an adapter aligns them.')
        if self.normalize:
            student, teacher = self._standardise(student), self._standardise(teacher)
        return (student - teacher).pow(2).flatten(1).mean(dim=1)
