"""The sigmoid focal loss as a plain function (twice differentiable)."""
import torch
import torch.nn.functional as F


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float,
                       gamma: float) -> torch.Tensor:
    """Elementwise sigmoid focal loss (``reduction='none'``) of logits against 0/1
    targets of the same shape, in plain PyTorch ops (differentiable twice, unlike
    mmcv's CUDA op): ``alpha_t * (1 - p_t)**gamma * BCE``."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t)**gamma * ce
