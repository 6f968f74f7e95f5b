import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd_ext.registry import MODELS


class _TemperatureDivergence(nn.Module):
    """A temperature-scaled divergence of student from teacher logits along a class
    dimension, unreduced (subclasses define :meth:`divergence`)."""

    def __init__(self, temperature: float, dim: int = 1):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.dim = dim

    def divergence(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Per-class divergence of logits already divided by T (same shape)."""
        raise NotImplementedError

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f'KL needs equal shapes, got student {tuple(student_logits.shape)} '
                f'and teacher {tuple(teacher_logits.shape)}.')
        t = self.temperature
        kl = self.divergence(student_logits / t, teacher_logits / t)
        return kl.sum(dim=self.dim) * t * t


@MODELS.register_module()
class KLDivergence(_TemperatureDivergence):
    """Temperature-scaled KL(teacher || student) over a class dimension, unreduced.

    ``T^2 * sum_c p_t,c (log p_t,c - log p_s,c)`` with ``p = softmax(z / T)`` along
    ``dim``, so gradients keep the same scale for any temperature.

    Args:
        temperature (float): softmax temperature T. Defaults to 4.
        dim (int): the class dimension. Defaults to 1.

    Shapes:
        student_logits, teacher_logits: ``[B, C, *]``. Returns ``[B, *]`` (the class
        dimension summed out): ``[B]`` for classification logits, ``[B, H, W]`` for
        per-pixel logits.
    """

    def __init__(self, temperature: float = 4.0, dim: int = 1):
        super().__init__(temperature, dim)

    def divergence(self, student, teacher):
        log_p_s = F.log_softmax(student, dim=self.dim)
        log_p_t = F.log_softmax(teacher, dim=self.dim)
        return log_p_t.exp() * (log_p_t - log_p_s)


@MODELS.register_module()
class SigmoidKLDivergence(_TemperatureDivergence):
    """Temperature-scaled KL between per-class Bernoulli distributions, unreduced:
    the KD term of sigmoid classifiers (RetinaNet, FCOS, GFL heads).

    ``T^2 * sum_c [q_c (log q_c - log p_c) + (1 - q_c) (log(1 - q_c) - log(1 - p_c))]``
    with ``q = sigmoid(z_t / T)``, ``p = sigmoid(z_s / T)``, summed along ``dim``.

    Args:
        temperature (float): T. Defaults to 1 (dense heads are trained at T = 1).
        dim (int): the class dimension. Defaults to 1.

    Shapes:
        student_logits, teacher_logits: ``[N, C, *]``. Returns ``[N, *]``.
    """

    def __init__(self, temperature: float = 1.0, dim: int = 1):
        super().__init__(temperature, dim)

    def divergence(self, student, teacher):
        q = torch.sigmoid(teacher)
        # log q - log p = logsigmoid(z_t) - logsigmoid(z_s), alike for the complements.
        return (q * (F.logsigmoid(teacher) - F.logsigmoid(student))
                + (1 - q) * (F.logsigmoid(-teacher) - F.logsigmoid(-student)))
