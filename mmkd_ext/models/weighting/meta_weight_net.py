"""MMKD: per-sample teacher weights predicted by two meta-learned networks."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd_ext.registry import MODELS
from mmkd_ext.structures import KDBatch, TeacherWeights
from .base import BaseWeighting


def _weight_mlp(in_features: int, num_teachers: int) -> nn.Sequential:
    """``Linear(in -> in/2) -> ReLU -> Linear(-> K)``; softmax is applied by the caller."""
    hidden = max(in_features // 2, 1)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, num_teachers))


@MODELS.register_module()
class MetaWeightNet(BaseWeighting):
    """MMKD (ICME 2023): weight networks trained by bi-level optimisation.

    - Logit net: input ``concat(z_1, ..., z_K, z_s)`` per sample, ``[B, C(K+1)]``
      (raw logits; the student's detached).
    - Feature net: input per sample: its row of the batch similarity matrix
      ``F F^T`` of every teacher and the (detached) student, ``[B, B(K+1)]``, with
      ``F`` the last recorded feature flattened per sample (a map ``[B, C, H, W]``,
      tokens ``[B, C, N]`` or a vector ``[B, C]``, to ``[B, D]``). Features are L2-normalised per
      sample first (``normalize_features=True``; the reference uses raw features,
      whose scale differs by orders of magnitude between networks), so each entry is
      a cosine similarity in [-1, 1].

    The feature net's input width depends on the batch size. ``feature_input=
    'batch_similarity'`` (the reference) needs every batch to have ``batch_size``
    samples: keep ``drop_last=True`` in the train dataloader and a quiz batch of
    the same size. ``feature_input='sorted_similarity'`` makes it size-independent:
    each row is sorted and linearly resampled to ``batch_size`` entries.

    The nets' parameters have ``requires_grad=False`` except inside
    :meth:`learning`, so the regular training step sends them no gradient;
    :class:`~mmkd_ext.engine.hooks.MetaWeightHook` trains them inside that block,
    on the outer objective
    :func:`~mmkd_ext.engine.optimizers.lookahead.lookahead_task_loss` (unrolled
    steps of the student through the distiller's ``forward(mode='distill')`` and
    ``lookahead()``). Configs: ``configs/<task>/**/kd_mmkd_*.py``.

    Args:
        batch_size (int): the training batch size B the feature net is built for.
        feature_input (str): ``'batch_similarity'`` or ``'sorted_similarity'``.
        normalize_features (bool): L2-normalise features before ``F F^T``.
    """

    def __init__(self, batch_size: int = 64, feature_input: str = 'batch_similarity',
                 normalize_features: bool = True):
        super().__init__()
        if feature_input not in ('batch_similarity', 'sorted_similarity'):
            raise ValueError("feature_input must be 'batch_similarity' or "
                             f"'sorted_similarity', got {feature_input!r}")
        self.batch_size = int(batch_size)
        self.feature_input = feature_input
        self.normalize_features = normalize_features
        self.logit_net: Optional[nn.Module] = None
        self.feature_net: Optional[nn.Module] = None

    def setup(self, num_teachers: int, num_classes: int,
              feature_channels: Sequence[int] = ()) -> None:
        models = num_teachers + 1
        self.logit_net = _weight_mlp(num_classes * models, num_teachers)
        self.feature_net = _weight_mlp(self.batch_size * models, num_teachers)
        self.requires_grad_(False)  # trained by MetaWeightHook inside learning()

    @property
    def _dtype(self) -> torch.dtype:
        return self.logit_net[0].weight.dtype

    def _similarity_rows(self, maps: List[torch.Tensor]) -> torch.Tensor:
        """``[B, B * len(maps)]``: each sample's similarity row for every model, from
        features ``[B, C, *]`` of any kind."""
        rows = []
        for feature_map in maps:
            flat = feature_map.flatten(1).to(self._dtype)
            if self.normalize_features:
                flat = F.normalize(flat, dim=1)
            sim = flat @ flat.t()  # [B, B]
            if self.feature_input == 'sorted_similarity':
                sim = sim.sort(dim=1, descending=True).values
                sim = F.interpolate(sim[:, None], size=self.batch_size, mode='linear',
                                    align_corners=True)[:, 0]
            rows.append(sim)
        return torch.cat(rows, dim=1)

    def _check_batch_size(self, batch: KDBatch) -> None:
        if self.feature_input == 'batch_similarity' and batch.batch_size != self.batch_size:
            raise ValueError(
                f'MetaWeightNet was built for batches of {self.batch_size} samples but got '
                f'{batch.batch_size}: set train_dataloader.drop_last=True and '
                'MetaWeightNet.batch_size to the batch size, or use '
                "feature_input='sorted_similarity'.")

    def forward(self, batch: KDBatch) -> TeacherWeights:
        if self.logit_net is None:
            raise RuntimeError('MetaWeightNet.setup() was not called (the distiller does).')
        logit_input = torch.cat(
            [*batch.teacher_logits, batch.student_logits.detach()], dim=1).to(self._dtype)
        logit_w = F.softmax(self.logit_net(logit_input), dim=1)
        if batch.teacher_features and batch.student_features:
            self._check_batch_size(batch)
            maps = [t[-1] for t in batch.teacher_features] + [batch.student_features[-1].detach()]
            feature_w = F.softmax(self.feature_net(self._similarity_rows(maps)), dim=1)
        else:
            feature_w = logit_w
        if not self.is_learning:
            logit_w, feature_w = logit_w.detach(), feature_w.detach()
        return TeacherWeights(logit=logit_w, feature=feature_w)
