from typing import Tuple

import torch
import torch.nn as nn

from mmkd_ext.registry import MODELS


@MODELS.register_module()
class LinearAdapter(nn.Module):
    """Maps a student feature vector to one teacher's channels with a linear layer.

    The adapter of ``[B, C]`` vectors (a ViT's class token, ConvNeXt's pooled
    output; the distiller's default for them). No activation: token features take
    either sign.

    Args:
        in_channels (int): student channels (filled in by the distiller).
        out_channels (int): teacher channels (filled in by the distiller).
        bias (bool): the linear layer's bias. Defaults to True.

    Shapes:
        student: ``[B, C_s]``; teacher: ``[B, C_t]``.
        Returns ``(student W^T + b, teacher)``, both ``[B, C_t]``.
    """
    #: The feature kinds it takes (see :mod:`mmkd_ext.models.utils.feature_layout`).
    kinds = ('vector', )

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels, bias=bias)

    def forward(self, student: torch.Tensor,
                teacher: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.proj(student), teacher
