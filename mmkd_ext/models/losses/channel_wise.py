import torch

from mmkd_ext.registry import MODELS
from .kl_divergence import KLDivergence


@MODELS.register_module()
class ChannelWiseDivergence(KLDivergence):
    """Channel-wise distillation (CWD, Shu et al., ICCV 2021), per sample.

    Each channel's map is turned into a distribution over locations
    (``softmax(z / T)`` over ``H*W``) and the student's is pulled to the teacher's
    with ``T^2 * KL``; the sample's term is the mean over channels. Every location
    counts (no ignore mask), as in the paper. As a feature loss it takes any
    channels-first feature with locations (maps, the distiller's ``[B, C, N]``
    tokens); a ``[B, C]`` vector has a single location and is refused.

    Args:
        temperature (float): T. Defaults to 4.

    Shapes:
        student_logits, teacher_logits: ``[B, C, H, W]`` (or ``[B, C, *]`` with at
        least one location dimension). Returns ``[B]``.
    """

    def __init__(self, temperature: float = 4.0):
        super().__init__(temperature, dim=2)

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.dim() < 3:
            raise ValueError(
                'ChannelWiseDivergence takes maps [B, C, H, W] (or [B, C, *] with '
                f'locations), got shape {tuple(student_logits.shape)}: a distribution '
                'over a single location is always 1. For [B, C] vector features use '
                "feature_kd.loss=dict(type='FeatureMSE').")
        per_channel = super().forward(student_logits.flatten(2), teacher_logits.flatten(2))
        return per_channel.mean(dim=1)  # [B, C] -> [B]
