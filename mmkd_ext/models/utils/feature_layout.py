"""One layout for the recorded features of any backbone.

Backbones give features of three kinds, told apart by their rank:

- ``[B, C, H, W]``: a map (CNN stages, Swin, SegFormer, FPN levels, ViT with
  ``out_type='featmap'``);
- ``[B, N, C]``: tokens (ViT/DeiT with ``out_type='raw'``: the class (and
  distillation) tokens followed by the patch tokens), channels last as the
  transformers give them;
- ``[B, C]``: a vector (a class token, ConvNeXt's pooled output).

The distiller keeps every feature channels first, ``[B, C, *locations]``: maps and
vectors as they are, tokens transposed to ``[B, C, N]`` (:func:`channels_first`).
Adapters, feature losses and the weightings read features in that layout, so a
feature's channels are always ``shape[1]`` and its locations the dimensions after.
"""
from typing import Dict

import torch

#: The distiller's rank of each kind of feature (channels first).
FEATURE_KINDS: Dict[int, str] = {4: 'map', 3: 'tokens', 2: 'vector'}

_SUPPORTED = '[B, C, H, W] maps, [B, N, C] tokens and [B, C] vectors'


def channels_first(feature: torch.Tensor) -> torch.Tensor:
    """A recorded feature in the distiller's layout.

    Args:
        feature: ``[B, C, H, W]``, ``[B, N, C]`` or ``[B, C]``.

    Returns:
        ``[B, C, H, W]``, ``[B, C, N]`` (a transposed view) or ``[B, C]``.

    Raises:
        TypeError: not a tensor. ValueError: another rank.
    """
    if not isinstance(feature, torch.Tensor):
        raise TypeError(f'Feature KD records tensors, got a {type(feature).__name__}.')
    return feature.transpose(1, 2) if feature_kind(feature) == 'tokens' else feature


def feature_kind(feature: torch.Tensor) -> str:
    """``'map'``, ``'tokens'`` or ``'vector'``: the kind of a feature by its rank
    (the same recorded or channels first); a ValueError for another rank."""
    if feature.dim() not in FEATURE_KINDS:
        raise ValueError(f'Feature KD supports {_SUPPORTED}; got a feature of shape '
                         f'{list(feature.shape)}.')
    return FEATURE_KINDS[feature.dim()]


def locations(feature: torch.Tensor) -> torch.Tensor:
    """A channels-first feature ``[B, C, *]`` as ``[B, C, L]``: ``L = H * W`` for a
    map, ``N`` for tokens, 1 for a vector."""
    if feature.dim() < 2:
        raise ValueError(f'A feature is [B, C, *], got shape {list(feature.shape)}.')
    return feature.flatten(2) if feature.dim() > 2 else feature[:, :, None]


def pool_locations(feature: torch.Tensor) -> torch.Tensor:
    """``[B, C, *]`` -> ``[B, C]``: the mean over the locations (a vector as it is)."""
    return locations(feature).mean(2)
