"""Convert a batch normalised for the student into the normalisation a teacher expects."""
from typing import NamedTuple, Optional

import torch
import torch.nn as nn


class Normalization(NamedTuple):
    """What an image data preprocessor does to pixel values.

    ``mean``/``std`` are ``[C]`` tensors, or None when it does not normalise;
    ``swap_channels`` is True when it turns BGR into RGB.
    """
    mean: Optional[torch.Tensor]
    std: Optional[torch.Tensor]
    swap_channels: bool

    def same_as(self, other: 'Normalization') -> bool:
        def eq(a, b):
            return (a is None and b is None) or (
                a is not None and b is not None and torch.allclose(a, b))
        return (self.swap_channels == other.swap_channels and eq(self.mean, other.mean)
                and eq(self.std, other.std))


def read_normalization(preprocessor: nn.Module) -> Optional[Normalization]:
    """Read the normalisation of an mmengine/mmpretrain/mmdet/mmseg image preprocessor.

    Returns None for a preprocessor of unknown kind.
    """
    swap = None
    for attr in ('_channel_conversion', 'to_rgb', 'channel_conversion'):
        if hasattr(preprocessor, attr):
            swap = bool(getattr(preprocessor, attr))
            break
    if swap is None or not hasattr(preprocessor, '_enable_normalize'):
        return None
    if not preprocessor._enable_normalize:
        return Normalization(None, None, swap)
    return Normalization(preprocessor.mean.detach().flatten().cpu(),
                         preprocessor.std.detach().flatten().cpu(), swap)


class InputConverter(nn.Module):
    """Maps inputs normalised by the student's preprocessor to a teacher's.

    ``x_teacher = (flip?(x * std_s + mean_s) - mean_t) / std_t``; an identity when
    both normalisations agree.

    Shapes:
        inputs: ``[B, C, H, W]``; returns the same shape.
    """

    def __init__(self, student: Normalization, teacher: Normalization):
        super().__init__()
        self.identity = student.same_as(teacher)
        self.flip = student.swap_channels != teacher.swap_channels
        for prefix, norm in (('student', student), ('teacher', teacher)):
            mean = None if norm.mean is None else norm.mean.view(1, -1, 1, 1).float()
            std = None if norm.std is None else norm.std.view(1, -1, 1, 1).float()
            self.register_buffer(f'{prefix}_mean', mean, persistent=False)
            self.register_buffer(f'{prefix}_std', std, persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return inputs
        x = inputs
        if self.student_mean is not None:
            x = x * self.student_std + self.student_mean
        if self.flip:
            x = x.flip(1)
        if self.teacher_mean is not None:
            x = (x - self.teacher_mean) / self.teacher_std
        return x


def build_input_converter(student_pre: nn.Module, teacher_pre: nn.Module,
                          teacher_name: str) -> InputConverter:
    """An :class:`InputConverter`, or a clear error when the conversion is unknown."""
    s, t = read_normalization(student_pre), read_normalization(teacher_pre)
    if s is None or t is None:
        if type(student_pre) is type(teacher_pre) and s is None and t is None:
            return InputConverter(Normalization(None, None, False),
                                  Normalization(None, None, False))
        unknown = type(student_pre if s is None else teacher_pre).__name__
        raise ValueError(
            f'{teacher_name}: cannot tell how data preprocessor {unknown} normalises '
            'images, so inputs normalised for the student cannot be converted for '
            'this teacher. Give the teacher the same data_preprocessor as the student.')
    if s.mean is not None and t.mean is not None and len(s.mean) != len(t.mean):
        raise ValueError(
            f'{teacher_name} expects {len(t.mean)} input channels, the student '
            f'{len(s.mean)}.')
    return InputConverter(s, t)
