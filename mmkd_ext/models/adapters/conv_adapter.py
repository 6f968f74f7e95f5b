from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule

from mmkd_ext.registry import MODELS

SPATIAL_MODES = ('pool', 'bilinear')


def check_spatial(spatial: str, adapter: str) -> None:
    if spatial not in SPATIAL_MODES:
        raise ValueError(f"{adapter} spatial must be 'pool' or 'bilinear', got {spatial!r}")


def match_spatial(student: torch.Tensor, teacher: torch.Tensor,
                  spatial: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Two maps ``[B, C, H_s, W_s]`` and ``[B, C, H_t, W_t]`` at one size ``[H, W]``:
    ``spatial='pool'`` average-pools whichever is larger down to the smaller size
    (per dimension), ``'bilinear'`` upsamples whichever is smaller."""
    (hs, ws), (ht, wt) = student.shape[-2:], teacher.shape[-2:]
    if spatial == 'pool':
        size = (min(hs, ht), min(ws, wt))
    else:
        size = (max(hs, ht), max(ws, wt))

    def resize(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == size:
            return x
        if spatial == 'pool':
            return F.adaptive_avg_pool2d(x, size)
        return F.interpolate(x, size=size, mode='bilinear', align_corners=False)

    return resize(student), resize(teacher)


@MODELS.register_module()
class ConvAdapter(nn.Module):
    """Aligns a student feature map to one teacher's: channels and spatial size.

    The adapter of ``[B, C, H, W]`` maps (the distiller's default for them).

    Channels: ``kind='conv1x1'`` is one 1x1 conv-BN-ReLU; ``kind='convs'`` is three
    conv-BN-ReLU blocks of kernel 1x1, 3x3 and 1x1.

    Spatial size: ``spatial='pool'`` average-pools whichever map is larger down to
    the smaller one (the teacher map too, if it is the larger); ``spatial='bilinear'``
    upsamples whichever is smaller. Both maps are returned.

    Args:
        in_channels (int): student channels (filled in by the distiller).
        out_channels (int): teacher channels (filled in by the distiller).
        kind (str): ``'conv1x1'`` or ``'convs'``.
        spatial (str): ``'pool'`` or ``'bilinear'``.
        norm_cfg (dict): normalisation layer config. Defaults to BN.

    Shapes:
        student: ``[B, C_s, H_s, W_s]``; teacher: ``[B, C_t, H_t, W_t]``.
        Returns ``(student', teacher')``, both ``[B, C_t, H, W]``.
    """
    #: The feature kinds it takes (see :mod:`mmkd_ext.models.utils.feature_layout`).
    kinds = ('map', )

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kind: str = 'conv1x1',
                 spatial: str = 'pool',
                 norm_cfg: dict = dict(type='BN')):
        super().__init__()
        if kind not in ('conv1x1', 'convs'):
            raise ValueError(f"ConvAdapter kind must be 'conv1x1' or 'convs', got {kind!r}")
        check_spatial(spatial, 'ConvAdapter')
        self.spatial = spatial
        if kind == 'conv1x1':
            self.layers = ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg)
        else:
            self.layers = nn.Sequential(
                ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg),
                ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg),
                ConvModule(out_channels, out_channels, 1, norm_cfg=norm_cfg))

    def forward(self, student: torch.Tensor,
                teacher: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return match_spatial(self.layers(student), teacher, self.spatial)
