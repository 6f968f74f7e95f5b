from typing import Optional, Tuple

import torch
import torch.nn as nn

from mmkd_ext.registry import MODELS


@MODELS.register_module()
class IdentityAdapter(nn.Module):
    """Passes both feature maps through unchanged: ``feature_kd.adapter=None`` for a
    student map that already has the teacher's shape.

    Args:
        in_channels, out_channels (int, optional): filled in by the distiller; they
            must be equal.

    Shapes:
        student, teacher: ``[B, C, H, W]`` each. Returns ``(student, teacher)``.
    """

    def __init__(self, in_channels: Optional[int] = None, out_channels: Optional[int] = None):
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f'IdentityAdapter maps {in_channels} student channels to '
                             f"{out_channels} teacher channels; use dict(type='ConvAdapter').")

    @classmethod
    def checked(cls, student: torch.Tensor, teacher: torch.Tensor,
                where: str) -> 'IdentityAdapter':
        """An identity adapter, or a ValueError if the probe maps differ in shape."""
        if student.shape[1:] != teacher.shape[1:]:
            raise ValueError(
                f'model.feature_kd.adapter is None, but {where} give maps of shapes '
                f'{list(student.shape[1:])} and {list(teacher.shape[1:])} (C, H, W). '
                "Set feature_kd.adapter=dict(type='ConvAdapter') (the default) to map "
                "the student's channels and size to the teacher's.")
        return cls()

    def forward(self, student: torch.Tensor,
                teacher: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return student, teacher
