import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd_ext.registry import MODELS


@MODELS.register_module()
class KLDivergence(nn.Module):
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
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.dim = dim

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f'KL needs equal shapes, got student {tuple(student_logits.shape)} '
                f'and teacher {tuple(teacher_logits.shape)}.')
        t = self.temperature
        log_p_s = F.log_softmax(student_logits / t, dim=self.dim)
        log_p_t = F.log_softmax(teacher_logits / t, dim=self.dim)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=self.dim)
        return kl * t * t


@MODELS.register_module()
class SigmoidKLDivergence(nn.Module):
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
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.dim = dim

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f'KL needs equal shapes, got student {tuple(student_logits.shape)} '
                f'and teacher {tuple(teacher_logits.shape)}.')
        t = self.temperature
        s, z = student_logits / t, teacher_logits / t
        q = torch.sigmoid(z)
        # log q - log p = logsigmoid(z) - logsigmoid(s), the same for the complements.
        kl = q * (F.logsigmoid(z) - F.logsigmoid(s)) + (1 - q) * (F.logsigmoid(-z) - F.logsigmoid(-s))
        return kl.sum(dim=self.dim) * t * t
