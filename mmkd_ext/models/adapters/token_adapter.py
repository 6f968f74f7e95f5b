import math
from typing import Optional, Tuple

import torch
import torch.nn as nn

from mmkd_ext.registry import MODELS
from .conv_adapter import check_spatial, match_spatial


def split_tokens(num_tokens: int, max_prefix: int = 2) -> Optional[Tuple[int, int]]:
    """``(P, h)`` with ``num_tokens = P + h * h``: P prefix tokens (class and
    distillation tokens) before a square grid of patch tokens, P the smallest of
    ``0..max_prefix`` that leaves a square; None if none does.

    Examples: 196 -> ``(0, 14)``, 197 (ViT) -> ``(1, 14)``, 198 (DeiT distilled)
    -> ``(2, 14)``, 10 -> ``(1, 3)``, 7 -> None.
    """
    for prefix in range(min(max_prefix, num_tokens - 1) + 1):
        layout = grid_layout(num_tokens, prefix)
        if layout is not None:
            return layout
    return None


def grid_layout(num_tokens: int, prefix: int) -> Optional[Tuple[int, int]]:
    """``(prefix, h)`` if ``num_tokens - prefix`` is a square ``h * h >= 1``, else None."""
    side = math.isqrt(max(num_tokens - prefix, 0))
    return (prefix, side) if side and side * side == num_tokens - prefix else None


@MODELS.register_module()
class TokenAdapter(nn.Module):
    """Aligns student tokens to one teacher's: channels with a linear layer over C,
    the token count through the patch grid.

    The adapter of tokens (a ViT's ``out_type='raw'`` output ``[B, N, C]``, which
    the distiller keeps channels first as ``[B, C, N]``; its default for them).

    - Channels: one linear layer ``C_s -> C_t`` applied to every token (no
      activation).
    - Equal token counts: compared token by token.
    - Different counts: each sequence is read as P prefix tokens followed by a
      square ``h x h`` grid of patch tokens (:func:`split_tokens`). The first
      ``min(P_s, P_t)`` prefix tokens are compared (the class token with the class
      token; a distillation token the other lacks is dropped), and the two grids
      are laid out as maps and brought to one size as :class:`ConvAdapter` does
      (``spatial='pool'`` pools the larger grid, ``'bilinear'`` upsamples the
      smaller), then flattened back to tokens. A sequence that is not prefix
      tokens plus a square grid raises a ValueError naming the fix.

    The inferred prefix can misread a sequence whose patch grid is not square (15
    patches and a class token read as a 4x4 grid); ``prefix_tokens`` then gives
    the two counts (a ViT's ``num_extra_tokens``: 1, a distilled DeiT's: 2).

    Args:
        in_channels (int): student channels (filled in by the distiller).
        out_channels (int): teacher channels (filled in by the distiller).
        spatial (str): ``'pool'`` or ``'bilinear'``, for different grids.
        max_prefix_tokens (int): the most prefix tokens looked for. Defaults to 2.
        prefix_tokens (tuple[int, int], optional): ``(P_s, P_t)``, the student's and
            the teacher's prefix tokens; inferred when None (the default).

    Shapes:
        student: ``[B, C_s, N_s]``; teacher: ``[B, C_t, N_t]``. Returns
        ``(student', teacher')``, both ``[B, C_t, N]``: ``N = N_s = N_t``, or
        ``min(P_s, P_t) + h * h`` with h the matched grid side.
    """
    #: The feature kinds it takes (see :mod:`mmkd_ext.models.utils.feature_layout`).
    kinds = ('tokens', )

    def __init__(self, in_channels: int, out_channels: int, spatial: str = 'pool',
                 max_prefix_tokens: int = 2,
                 prefix_tokens: Optional[Tuple[int, int]] = None):
        super().__init__()
        check_spatial(spatial, 'TokenAdapter')
        if prefix_tokens is not None and len(prefix_tokens) != 2:
            raise ValueError('TokenAdapter prefix_tokens is (student, teacher) counts, got '
                             f'{prefix_tokens!r}.')
        self.spatial = spatial
        self.max_prefix_tokens = int(max_prefix_tokens)
        self.prefix_tokens = None if prefix_tokens is None else tuple(map(int, prefix_tokens))
        self.proj = nn.Linear(in_channels, out_channels)

    def _split(self, tokens: torch.Tensor, who: str, other: int) -> Tuple[int, int]:
        """``(P, h)`` of one sequence ``[B, C, N]`` (``who``: 'student' or 'teacher';
        ``other``: the other sequence's N, for the error)."""
        num_tokens = tokens.shape[2]
        if self.prefix_tokens is None:
            layout = split_tokens(num_tokens, self.max_prefix_tokens)
        else:
            layout = grid_layout(num_tokens, self.prefix_tokens[who == 'teacher'])
        if layout is None:
            raise ValueError(
                f'TokenAdapter: the {who} gives {num_tokens} tokens and the other model '
                f'{other}; different token counts are matched through a square patch '
                f'grid after the class/distillation tokens, and {num_tokens} is not '
                'that. Give the models the same number of patches (img_size / '
                "patch_size), or record maps instead (the backbone's out_type='featmap').")
        return layout

    def forward(self, student: torch.Tensor,
                teacher: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        student = self.proj(student.transpose(1, 2)).transpose(1, 2)  # [B, C_t, N_s]
        n_s, n_t = student.shape[2], teacher.shape[2]
        if n_s == n_t:
            return student, teacher
        p_s, h_s = self._split(student, 'student', n_t)
        p_t, h_t = self._split(teacher, 'teacher', n_s)
        prefix = min(p_s, p_t)

        def grid(x: torch.Tensor, p: int, side: int) -> torch.Tensor:
            return x[:, :, p:].unflatten(2, (side, side))

        s_grid, t_grid = match_spatial(grid(student, p_s, h_s), grid(teacher, p_t, h_t),
                                       self.spatial)
        return (torch.cat([student[:, :, :prefix], s_grid.flatten(2)], dim=2),
                torch.cat([teacher[:, :, :prefix], t_grid.flatten(2)], dim=2))
