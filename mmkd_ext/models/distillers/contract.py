"""The interface between the distiller and the training hooks."""
from typing import ContextManager, Dict, Optional, Protocol, runtime_checkable

import torch
import torch.nn as nn

from mmkd_ext.models.task_views.base import BaseTaskView
from mmkd_ext.models.weighting.base import BaseWeighting
from mmkd_ext.structures import KDBatch, KDStep, TeacherWeights
from .step_health import StepHealth


@runtime_checkable
class DistillerContract(Protocol):
    """What training hooks (:mod:`mmkd_ext.engine.hooks`) read from and call on the
    distiller; :class:`~mmkd_ext.models.distillers.MultiTeacherDistiller` implements it.
    It is checked with ``isinstance`` (which tests that the members exist), not
    ``issubclass`` (a protocol with data members refuses that).
    A hook uses nothing else of the model.

    Read after a training step:

    - ``last_step``: the last real training step's batch and weights, detached
      (:class:`~mmkd_ext.structures.KDStep`); look-ahead passes leave it alone. With
      ``retain_teacher_outputs`` set (a hook sets it), it also holds the step's
      preprocessed inputs and the teachers' outputs on them.
    - ``step_health``: the step's finite check (:class:`StepHealth`):
      ``step_health.skipped`` (the step was non-finite and skipped; hooks that learn
      from the step return early) and ``step_health.non_finite_terms`` (the bad
      terms, for logs).

    Call:

    - ``step_health.set_non_finite_policy('skip' | 'raise')``: the one way to change
      what a non-finite step does.
    - ``lookahead(teacher_outputs=None)``: a context for passes that are not training
      steps (MMKD's unrolled steps): teachers run once per input batch (not at all
      for the batch of ``teacher_outputs``, ``(inputs, (heads, maps))``), ``last_step``
      and the step's health are left as the last real step set them;
      ``in_lookahead`` is True inside it.
    - ``forward(inputs, data_samples, mode='distill')``: the weighted distillation
      losses alone (``loss_kd``, ``loss_feat``), for look-ahead passes;
      ``mode='distill_terms'``: the per-sample terms and the weights apart,
      ``(KDBatch, TeacherWeights)``.
    - ``per_sample_distill_losses(batch, weights)``: ``{'loss_kd': [B],
      'loss_feat': [B]}``, each sample's weighted terms (MTKD-RL's reward).

    The parts hooks read: ``weighting`` (the method the hook trains), ``task_view``,
    ``student`` and ``data_preprocessor``.
    """
    weighting: BaseWeighting
    task_view: BaseTaskView
    student: nn.Module
    data_preprocessor: nn.Module
    last_step: Optional[KDStep]
    step_health: StepHealth
    retain_teacher_outputs: bool

    @property
    def in_lookahead(self) -> bool:
        ...

    def lookahead(self, teacher_outputs: Optional[tuple] = None) -> ContextManager:
        ...

    def per_sample_distill_losses(self, batch: KDBatch,
                                  weights: TeacherWeights) -> Dict[str, torch.Tensor]:
        ...
