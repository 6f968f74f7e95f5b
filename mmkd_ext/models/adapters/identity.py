from typing import Optional, Tuple

import torch
import torch.nn as nn

from mmkd_ext.models.utils.feature_layout import feature_kind
from mmkd_ext.registry import MODELS

_PLURALS = dict(map='maps', tokens='tokens', vector='vectors')
_DIMS = dict(map='C, H, W', tokens='C, N', vector='C')


@MODELS.register_module()
class IdentityAdapter(nn.Module):
    """Passes both features through unchanged: ``feature_kd.adapter=None`` for a
    student feature that already has the teacher's shape.

    Args:
        in_channels, out_channels (int, optional): filled in by the distiller; they
            must be equal.

    Shapes:
        student, teacher: the same shape, any feature kind (``[B, C, H, W]``,
        ``[B, C, N]`` or ``[B, C]``). Returns ``(student, teacher)``.
    """
    #: Takes every feature kind.
    kinds = ('map', 'tokens', 'vector')

    def __init__(self, in_channels: Optional[int] = None, out_channels: Optional[int] = None):
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f'IdentityAdapter maps {in_channels} student channels to '
                             f'{out_channels} teacher channels; leave feature_kd.adapter '
                             'unset to build the adapter of the feature kind.')

    @classmethod
    def checked(cls, student: torch.Tensor, teacher: torch.Tensor,
                where: str) -> 'IdentityAdapter':
        """An identity adapter, or a ValueError if the probe features (channels
        first) differ in shape."""
        if student.shape[1:] != teacher.shape[1:]:
            from . import DEFAULT_ADAPTERS  # the package's table, after its imports
            kind = feature_kind(student)
            raise ValueError(
                f'model.feature_kd.adapter is None, but {where} give {_PLURALS[kind]} of '
                f'shapes {list(student.shape[1:])} and {list(teacher.shape[1:])} '
                f'({_DIMS[kind]}). Leave feature_kd.adapter unset, or set '
                f"feature_kd.adapter=dict(type='{DEFAULT_ADAPTERS[kind]}'), to map the "
                "student's channels and size to the teacher's.")
        return cls()

    def forward(self, student: torch.Tensor,
                teacher: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return student, teacher
