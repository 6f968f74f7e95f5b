import torch
import torch.nn as nn

from mmkd_ext.structures import KDBatch, TeacherWeights


class BaseWeighting(nn.Module):
    """Turns a :class:`KDBatch` into per-sample teacher weights ``[B, K]``.

    Subclasses implement :meth:`forward`. ``requires`` names the optional fields of
    the batch they read (``'teacher_loss'``), so the distiller computes those only
    when needed: a teacher's task loss is cheap for classification but not for
    detection.
    """
    requires: frozenset = frozenset()

    def setup(self, num_teachers: int, num_classes: int) -> None:
        """Called once by the distiller when K and C are known (before the optimizer
        is built): size learned parts here, or raise if the method cannot serve them."""

    def forward(self, batch: KDBatch) -> TeacherWeights:
        raise NotImplementedError

    @staticmethod
    def uniform(batch: KDBatch) -> torch.Tensor:
        """``[B, K]`` equal weights ``1/K``."""
        b, k = batch.batch_size, batch.num_teachers
        return batch.logit_kd.new_full((b, k), 1.0 / k)
