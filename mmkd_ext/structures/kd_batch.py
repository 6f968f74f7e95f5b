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

    B: batch size, K: the task teachers (the teachers of the student's library; all
    of them unless the pool has feature teachers), C: classes (per-sample logits), L:
    feature layers.

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
        student_features: L features ``[B, C_s, *]`` of the student, channels first:
            maps ``[B, C, H, W]``, tokens ``[B, C, N]`` or vectors ``[B, C]``
            (:mod:`mmkd_ext.models.utils.feature_layout`).
        teacher_features: K lists of L features ``[B, C_t, *]``.
        adapted_features: K lists of L adapted student maps, aligned to the teacher.
        data_samples: the batch's data samples.
        feature_teacher_kd: ``[B, K_F]`` per-sample feature term of each feature
            teacher (a model of another library, which has no logits), or None
            when the pool has none. The K above counts the task teachers only;
            the weightings see those.
        teacher_outputs: ``(heads, maps)`` of the whole pool as
            :meth:`~mmkd_ext.models.distillers.TeacherPool.run` returned them (task
            and feature teachers, config order), as the step computed them.
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
    feature_teacher_kd: Optional[torch.Tensor] = None
    teacher_outputs: Optional[tuple] = None

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
        batch: the step's :class:`KDBatch`, detached, without ``teacher_outputs``.
        weights: the teacher weights used in the step, detached.
        inputs: ``[B, C, H, W]``, the step's preprocessed student inputs; only when
            the distiller's ``retain_teacher_outputs`` is set (else None).
        teacher_outputs: ``(heads, maps)``, the teachers' outputs on ``inputs`` as
            :meth:`~mmkd_ext.models.distillers.TeacherPool.run` returns them; only
            when retained (else None). A hook that reads them may set this to None
            once done, so they are not kept during the next step.
    """
    batch: 'KDBatch'
    weights: 'TeacherWeights'
    inputs: Optional[torch.Tensor] = None
    teacher_outputs: Optional[tuple] = None


@dataclass
class AgentTransition:
    """What MTKD-RL's agent read and did in one step (detached): RLAgentHook
    stores it with the step's reward and trains the agent on it
    (:meth:`~mmkd_ext.models.weighting.RLAgentWeighting.agent_loss`).

    B: batch size, K: teachers, S: the agent's state width.

    Attributes:
        state: ``[B, S]`` the agent's input.
        logit_rules: ``[B, 2, K]`` the rule weights mixed into the logit weights
            (confidence, logit gap).
        feature_rules: ``[B, 2, K]`` the rule weights mixed into the feature weights
            (confidence, feature similarity).
        actions: ``[2, B, K]`` the sampled actions (logit, feature head) of a
            stochastic policy in training; None otherwise.
    """
    state: torch.Tensor
    logit_rules: torch.Tensor
    feature_rules: torch.Tensor
    actions: Optional[torch.Tensor] = None

    def detached(self) -> 'AgentTransition':
        return AgentTransition(**{k: _detach(v) for k, v in self.__dict__.items()})

    def as_dict(self) -> Dict[str, torch.Tensor]:
        """The fields that are set, by name (the form RLAgentHook stores and
        checkpoints, with the step's ``reward``)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class TeacherWeights:
    """Per-sample teacher weights.

    Attributes:
        logit: ``[B, K]`` weights of the logit terms.
        feature: ``[B, K]`` weights of the feature terms (the logit weights when a
            method has a single set).
        transition: what MTKD-RL's agent read and did (None for other methods).
    """
    logit: torch.Tensor
    feature: torch.Tensor
    transition: Optional[AgentTransition] = None

    def detached(self) -> 'TeacherWeights':
        return TeacherWeights(
            logit=self.logit.detach(), feature=self.feature.detach(),
            transition=None if self.transition is None else self.transition.detached())
