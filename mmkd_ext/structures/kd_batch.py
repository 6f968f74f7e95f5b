"""What the distiller hands to a weighting method, and what it gets back."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch


def _detach(x):
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, list):
        return [_detach(v) for v in x]
    if isinstance(x, dict):
        return {k: _detach(v) for k, v in x.items()}
    return x


@dataclass
class KDBatch:
    """Per-sample quantities of one batch, as the task view defines them.

    B: batch size, K: teachers, C: classes (per-sample logits), L: feature layers.

    Attributes:
        student_logits: ``[B, C]`` per-sample student logits (with gradient).
        teacher_logits: ``[K, B, C]`` per-sample teacher logits (no gradient).
        logit_kd: ``[B, K]`` per-sample logit distillation term of each teacher.
        feature_kd: ``[B, K]`` per-sample feature term (mean over layers), or None
            when feature KD is off.
        teacher_loss: ``[B, K]`` per-sample task loss of each teacher on the ground
            truth, filled only when the weighting asks for it.
        student_loss: ``[B]`` per-sample task loss of the student (detached),
            filled only when the weighting asks for it.
        student_features: L maps ``[B, C_s, H, W]`` of the student.
        teacher_features: K lists of L maps ``[B, C_t, H, W]``.
        adapted_features: K lists of L adapted student maps, aligned to the teacher.
        data_samples: the batch's data samples.
    """
    student_logits: torch.Tensor
    teacher_logits: torch.Tensor
    logit_kd: torch.Tensor
    feature_kd: Optional[torch.Tensor] = None
    teacher_loss: Optional[torch.Tensor] = None
    student_loss: Optional[torch.Tensor] = None
    student_features: List[torch.Tensor] = field(default_factory=list)
    teacher_features: List[List[torch.Tensor]] = field(default_factory=list)
    adapted_features: List[List[torch.Tensor]] = field(default_factory=list)
    data_samples: Optional[list] = None

    def detached(self) -> 'KDBatch':
        """A copy with every tensor detached (what hooks keep after a step)."""
        return KDBatch(**{k: _detach(v) for k, v in self.__dict__.items()})

    @property
    def num_teachers(self) -> int:
        return self.teacher_logits.shape[0]

    @property
    def batch_size(self) -> int:
        return self.student_logits.shape[0]


@dataclass
class KDStep:
    """What the last training step computed, kept (detached) for training hooks.

    Attributes:
        batch: the step's :class:`KDBatch`, detached.
        weights: the teacher weights used in the step, detached.
    """
    batch: 'KDBatch'
    weights: 'TeacherWeights'


@dataclass
class TeacherWeights:
    """Per-sample teacher weights.

    Attributes:
        logit: ``[B, K]`` weights of the logit terms.
        feature: ``[B, K]`` weights of the feature terms (the logit weights when a
            method has a single set).
        aux: what the method's training hook needs from the step (e.g. the RL
            agent's state and actions), by name.
    """
    logit: torch.Tensor
    feature: torch.Tensor
    aux: Dict[str, torch.Tensor] = field(default_factory=dict)

    def detached(self) -> 'TeacherWeights':
        return TeacherWeights(**{k: _detach(v) for k, v in self.__dict__.items()})
