"""The task view: the only place where the tasks differ.

A task view tells the task-agnostic distiller what a model's raw head output means:
how to reduce it to per-sample logits ``[B, C]``, how to compute the per-sample
logit-distillation term ``[B]`` between a student and a teacher output, and the
per-sample task loss ``[B]`` of a model's output on the ground truth. Feature recording,
adapters, weighting and loss assembly are shared by all tasks.
"""
from typing import Any, List, Sequence, Tuple

import torch
import torch.nn as nn

from mmkd_ext.models.utils.feature_layout import channels_first


class BaseTaskView:
    """Interface of a task view (see module docstring).

    Attributes:
        head_module: name of the submodule whose output is the prediction; the
            student's is recorded during its ``loss`` pass (or, in look-ahead passes,
            its :meth:`teacher_forward`), and :meth:`teacher_forward` returns the same
            structure.
        default_feature_layers: layer selectors recorded for feature KD when the
            config names none (:func:`~mmkd_ext.utils.recorder.parse_selector`). A
            module returning a tuple or list contributes each tensor as one feature
            (e.g. every FPN level); ``'backbone[-1]'``, the default, is the
            backbone's last output, whatever its module names.
    """
    head_module: str = 'head'
    default_feature_layers: Tuple[str, ...] = ('backbone[-1]', )

    def teacher_forward(self, teacher: nn.Module, inputs: torch.Tensor,
                        data_samples: list) -> Any:
        """Raw head output of a model, the structure the student's recorded
        ``head_module`` output has: it must run ``head_module`` as the model's ``loss``
        does. Used for the teachers every step (under inference mode), for every
        model once at construction, and for the student (with gradients) in
        look-ahead passes that need no task loss (``forward(mode='distill')``)."""
        return teacher(inputs, data_samples, mode='tensor')

    def sample_logits(self, head_out: Any) -> torch.Tensor:
        """Per-sample logits ``[B, C]`` from a raw head output."""
        raise NotImplementedError

    def logit_kd(self, kd_loss: nn.Module, student_out: Any, teacher_out: Any,
                 data_samples: list) -> torch.Tensor:
        """Per-sample logit distillation term ``[B]``."""
        raise NotImplementedError

    def sample_loss(self, head_out: Any, data_samples: list) -> torch.Tensor:
        """Per-sample task loss ``[B]`` of a raw head output (a teacher's or the
        student's) on the ground truth."""
        raise NotImplementedError

    def sample_losses(self, head_outs: Sequence[Any], data_samples: list) -> torch.Tensor:
        """``[B, N]``: :meth:`sample_loss` of N head outputs on the same ground truth
        (a view may share the work on the ground truth between them)."""
        return torch.stack([self.sample_loss(out, data_samples) for out in head_outs], dim=1)

    def hard_samples(self, student_logits: torch.Tensor, data_samples: list) -> torch.Tensor:
        """``[B]`` bool: samples the student gets wrong, from its per-sample logits
        ``[B, C]`` (:meth:`sample_logits`)."""
        raise NotImplementedError

    def bind(self, student: nn.Module) -> None:
        """Read what the view needs from the student model (called once, first)."""

    def check_teacher(self, teacher: nn.Module, teacher_name: str) -> None:
        """Raise a clear error if the view cannot read ``teacher`` (called once per
        teacher at construction, after :meth:`bind` and before the teacher first
        runs)."""

    def check_compatible(self, student_out: Any, teacher_out: Any, teacher_name: str,
                         head_kd: bool = True) -> None:
        """Raise a clear error if the two outputs cannot be distilled (called once);
        ``head_kd`` tells whether the head outputs are compared directly."""
        s, t = self.sample_logits(student_out), self.sample_logits(teacher_out)
        if s.shape[1:] != t.shape[1:]:
            raise ValueError(
                f'{teacher_name} predicts {t.shape[1]} classes but the student '
                f'{s.shape[1]}: teachers and student must share the label set.')

    @staticmethod
    def flatten_features(outputs: Sequence[Any]) -> List[torch.Tensor]:
        """Recorded layer outputs (tensors, or tuples and lists of them, nested) as a
        flat list of features, channels first
        (:func:`~mmkd_ext.models.utils.feature_layout.channels_first`):
        ``[B, C, H, W]`` maps and ``[B, C]`` vectors as they are, ``[B, N, C]``
        tokens as ``[B, C, N]``."""
        features = []
        for out in outputs:
            if isinstance(out, (tuple, list)):
                features.extend(BaseTaskView.flatten_features(out))
            else:
                features.append(channels_first(out))
        return features
