"""The classic, parameter-free teacher weightings of multi-teacher KD."""
from typing import Sequence

import torch
import torch.nn.functional as F

from mmkd_ext.registry import MODELS
from mmkd_ext.structures import KDBatch, TeacherWeights
from .base import BaseWeighting


@MODELS.register_module()
class UniformWeighting(BaseWeighting):
    """AVER: every teacher weighs ``1/K`` for every sample."""

    def forward(self, batch: KDBatch) -> TeacherWeights:
        w = self.uniform(batch)
        return TeacherWeights(logit=w, feature=w)


@MODELS.register_module()
class FixedWeighting(BaseWeighting):
    """User-given per-teacher weights, the same for every sample.

    Args:
        weights (Sequence[float]): one non-negative weight per teacher, in the
            order of the distiller's ``teachers``.
        feature_weights (Sequence[float], optional): weights of the feature terms;
            defaults to ``weights``.
        normalize (bool): divide by the sum so each row sums to 1. Defaults to True.
    """

    def __init__(self,
                 weights: Sequence[float],
                 feature_weights: Sequence[float] = None,
                 normalize: bool = True):
        super().__init__()
        self.register_buffer('logit_weights', self._check(weights, normalize, 'weights'), False)
        feature_weights = weights if feature_weights is None else feature_weights
        self.register_buffer(
            'feature_weights', self._check(feature_weights, normalize, 'feature_weights'), False)

    @staticmethod
    def _check(weights, normalize: bool, name: str) -> torch.Tensor:
        w = torch.as_tensor(list(weights), dtype=torch.float32)
        if w.ndim != 1 or len(w) == 0 or (w < 0).any() or not torch.isfinite(w).all():
            raise ValueError(f'FixedWeighting.{name} must be a non-empty list of '
                             f'finite non-negative numbers, got {list(weights)}')
        if normalize:
            if w.sum() <= 0:
                raise ValueError(f'FixedWeighting.{name} sum to 0; cannot normalise.')
            w = w / w.sum()
        return w

    def setup(self, num_teachers: int, num_classes: int,
              feature_channels: Sequence[int] = ()) -> None:
        for name in ('logit_weights', 'feature_weights'):
            n = len(getattr(self, name))
            if n != num_teachers:
                raise ValueError(
                    f'FixedWeighting has {n} {name.replace("_", " ")} but the '
                    f'distiller weighs {num_teachers} teachers (those of the student\'s '
                    'library, in config order; teachers of another library take an equal '
                    'share of the feature weight): give one weight per weighed teacher.')

    def forward(self, batch: KDBatch) -> TeacherWeights:
        b = batch.batch_size
        logit = self.logit_weights.to(batch.logit_kd).expand(b, -1)
        feature = self.feature_weights.to(batch.logit_kd).expand(b, -1)
        return TeacherWeights(logit=logit, feature=feature)


@MODELS.register_module()
class EntropyWeighting(BaseWeighting):
    """EBKD: confident teachers (low prediction entropy) weigh more.

    ``w[i, k] = (1 - H_k(i) / sum_j H_j(i)) / K`` with ``H_k`` the entropy of
    ``softmax(z_k)`` at temperature 1. Each row sums to ``(K - 1) / K`` as in the
    reference implementation; ``normalize=True`` divides by ``K - 1`` instead so
    rows sum to 1. With a single teacher the weight is 1.
    """

    def __init__(self, normalize: bool = False):
        super().__init__()
        self.normalize = normalize

    def setup(self, num_teachers: int, num_classes: int,
              feature_channels: Sequence[int] = ()) -> None:
        if num_classes < 2 and num_teachers > 1:
            raise ValueError(
                'EntropyWeighting (EBKD) weighs teachers by the entropy of their softmax '
                f'over the classes, but the per-sample logits have {num_classes} class (e.g. '
                "a two-stage detector's RPN objectness): every teacher's entropy is 0 and "
                'EBKD would weigh them all alike. Use ConfidenceWeighting (per-sample '
                'teacher losses) or UniformWeighting.')

    def forward(self, batch: KDBatch) -> TeacherWeights:
        k = batch.num_teachers
        if k == 1:
            w = self.uniform(batch)
            return TeacherWeights(logit=w, feature=w)
        log_p = F.log_softmax(batch.teacher_logits.detach(), dim=-1)  # [K, B, C]
        entropy = -(log_p.exp() * log_p).sum(-1).t()  # [B, K]
        share = entropy / entropy.sum(dim=1, keepdim=True).clamp_min(1e-12)
        w = (1.0 - share) / ((k - 1) if self.normalize else k)
        return TeacherWeights(logit=w, feature=w)


def confidence_weights(teacher_loss: torch.Tensor) -> torch.Tensor:
    """CA-MKD's rule: ``[B, K]`` per-sample losses -> ``[B, K]`` weights
    ``(1 - softmax_k(loss)) / (K - 1)`` (rows sum to 1; 1 for a single teacher)."""
    k = teacher_loss.shape[1]
    if k == 1:
        return torch.ones_like(teacher_loss)
    return (1.0 - F.softmax(teacher_loss.detach(), dim=1)) / (k - 1)


@MODELS.register_module()
class ConfidenceWeighting(BaseWeighting):
    """CA-MKD: teachers with a lower task loss on the ground truth weigh more.

    ``w[i, :] = (1 - softmax_k(loss_k(i))) / (K - 1)``; rows sum to 1. The loss is
    the task view's per-sample teacher loss (cross-entropy for classification).
    With a single teacher the weight is 1.
    """
    requires = frozenset({'teacher_loss'})

    def forward(self, batch: KDBatch) -> TeacherWeights:
        w = confidence_weights(batch.teacher_loss)
        return TeacherWeights(logit=w, feature=w)
