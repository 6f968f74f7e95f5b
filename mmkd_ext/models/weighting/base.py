from contextlib import contextmanager
from typing import Sequence

import torch
import torch.nn as nn

from mmkd_ext.structures import KDBatch, TeacherWeights


class BaseWeighting(nn.Module):
    """Turns a :class:`KDBatch` into per-sample teacher weights ``[B, K]``.

    Subclasses implement :meth:`forward`. ``requires`` names the optional fields of
    the batch they read (``'teacher_loss'``, ``'student_loss'``), so the distiller
    computes those only when needed: a per-sample task loss is cheap for
    classification but not for detection.

    Methods with learned parts (MMKD's weight networks, MTKD-RL's agent) are trained
    by their own hook, not by the student's optimizer: their parameters require grad
    only inside :meth:`learning`, so the regular training step sends them no
    gradient and DDP does not wait for one.
    """
    requires: frozenset = frozenset()
    _learning: bool = False  # True inside learning()

    def setup(self, num_teachers: int, num_classes: int,
              feature_channels: Sequence[int] = ()) -> None:
        """Called once by the distiller when the models are known (before the
        optimizer is built): size learned parts here, or raise if the method cannot
        serve them.

        Args:
            num_teachers: K.
            num_classes: C of the per-sample logits.
            feature_channels: channels of each teacher's last recorded feature map
                (K entries), empty when feature KD is off.
        """

    def forward(self, batch: KDBatch) -> TeacherWeights:
        raise NotImplementedError

    @property
    def is_learning(self) -> bool:
        """True inside :meth:`learning`."""
        return self._learning

    @contextmanager
    def learning(self):
        """Within the block the parameters require grad (and the weights keep their
        graph where a method supports it); outside they are frozen."""
        previous = self.is_learning
        self._learning = True
        self.requires_grad_(True)
        try:
            yield self
        finally:
            self._learning = previous
            self.requires_grad_(previous)

    @staticmethod
    def uniform(batch: KDBatch) -> torch.Tensor:
        """``[B, K]`` equal weights ``1/K``."""
        b, k = batch.batch_size, batch.num_teachers
        return batch.logit_kd.new_full((b, k), 1.0 / k)
