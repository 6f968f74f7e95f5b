"""MTKD-RL: per-sample teacher weights set by an agent trained from rewards."""
import copy
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd_ext.models.utils.feature_layout import pool_locations
from mmkd_ext.registry import MODELS
from mmkd_ext.structures import AgentTransition, KDBatch, TeacherWeights
from .base import BaseWeighting
from .rl_policies import POLICY_ALIASES, BasePolicy
from .static import confidence_weights


class AgentNet(nn.Module):
    """``Linear(in -> hidden, no bias) -> ReLU``, then a logit head and a feature head
    ``Linear(hidden -> K)`` each. Returns scores ``[2, B, K]`` (softmax is the
    policy's)."""

    def __init__(self, in_features: int, hidden_channels: int, num_teachers: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(in_features, hidden_channels, bias=False),
                                   nn.ReLU(inplace=True))
        self.logit_head = nn.Linear(hidden_channels, num_teachers)
        self.feature_head = nn.Linear(hidden_channels, num_teachers)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        hidden = self.trunk(state)
        return torch.stack([self.logit_head(hidden), self.feature_head(hidden)])


@MODELS.register_module()
class RLAgentWeighting(BaseWeighting):
    """MTKD-RL (AAAI 2025): an agent reads each sample's state and sets the weights.

    State of sample i, per teacher m (detached, concatenated over teachers):
    ``[cos_m, KD_m, loss_m, e_m, z_m]`` with ``e_m`` the teacher's embedding
    (its last recorded feature averaged over its locations, ``[D_m]``: a map's
    H, W, the tokens; a vector as it is), ``z_m`` its per-sample logits ``[C]``,
    ``loss_m`` its task loss on the ground truth, ``KD_m`` the logit KD term and
    ``cos_m`` the cosine similarity of the pooled adapted student feature with
    ``e_m``. Width: ``sum_m (3 + D_m + C)``.

    The agent's two actions ``pi_L``, ``pi_F`` (``[B, K]``, see the policy) are
    mixed with two rules:
    ``wL = mL0 * pi_L + mL1 * w_conf + mL2 * softmax_m(KD_m)`` and
    ``wF = mF0 * pi_F + mF1 * w_conf + mF2 * softmax_m(cos_m)``, ``w_conf`` the
    CA-MKD rule; the mixing weights are 1/3 each, or learned (``dynamic=True``,
    a softmax over three scores per set, trained with the agent's objective).
    Rows sum to 1. During the first ``warmup_epochs`` every weight is 1 (the
    teachers' terms are summed) while the agent already learns from the states.

    The agent is trained by :class:`~mmkd_ext.engine.hooks.RLAgentHook`, which also tells
    this module the training progress; a training forward without the hook raises.
    Outside the hook's update the parameters take no gradient (see
    :meth:`BaseWeighting.learning`).

    Needs feature KD (adapters and teacher features make part of the state).

    Args:
        hidden_channels (int): width of the agent's hidden layer.
        policy (str | dict): ``'deterministic'`` (the reference; a
            :class:`DeterministicPolicy`), ``'stochastic'`` (a
            :class:`DirichletPolicy`) or a policy config.
        dynamic (bool): learn the mixing weights instead of fixing them to 1/3.
        warmup_epochs (float): epochs during which every weight is 1.
    """
    requires = frozenset({'teacher_loss', 'student_loss'})

    def __init__(self,
                 hidden_channels: int = 128,
                 policy: Union[str, dict] = 'deterministic',
                 dynamic: bool = False,
                 warmup_epochs: float = 1.0):
        super().__init__()
        if isinstance(policy, str):
            if policy not in POLICY_ALIASES:
                raise ValueError(f'Unknown RLAgentWeighting policy {policy!r}; use one of '
                                 f'{sorted(POLICY_ALIASES)} or a policy config dict.')
            policy = dict(type=POLICY_ALIASES[policy])
        policy = copy.deepcopy(policy)
        policy.setdefault('_scope_', 'mmkd_ext')
        self.policy: BasePolicy = MODELS.build(policy)
        if dynamic and self.policy.stochastic:
            raise ValueError('dynamic=True learns the mixing weights with the deterministic '
                             "objective; use policy='deterministic' or dynamic=False.")
        self.hidden_channels = int(hidden_channels)
        self.dynamic = dynamic
        self.warmup_epochs = float(warmup_epochs)
        self.agent: Optional[AgentNet] = None
        self._epoch: Optional[float] = None
        self._seed: Optional[int] = None

    def setup(self, num_teachers: int, num_classes: int,
              feature_channels: Sequence[int] = ()) -> None:
        if len(feature_channels) != num_teachers:
            raise ValueError(
                'RLAgentWeighting needs feature KD: its state compares the adapted student '
                "feature with each teacher's embedding. Set model.feature_kd=dict() (the "
                "task view's layers, the adapter of each feature kind) or dict(layers=...).")
        in_features = sum(3 + num_classes + d for d in feature_channels)
        self.agent = AgentNet(in_features, self.hidden_channels, num_teachers)
        if self.dynamic:  # [logit set, feature set] x [agent, confidence, gap rule]
            self.mixing_scores = nn.Parameter(torch.zeros(2, 3))
        self.requires_grad_(False)  # trained by RLAgentHook inside learning()

    # -------------------------------------------------------------- progress
    def begin_step(self, epoch: float, seed: Optional[int] = None) -> None:
        """Called by the hook before every training step: the progress in epochs
        (for the warm-up) and the seed of the step's exploration noise."""
        self._epoch, self._seed = float(epoch), seed

    @property
    def in_warmup(self) -> bool:
        return self._epoch is not None and self._epoch < self.warmup_epochs

    # ----------------------------------------------------------------- parts
    def agent_state(self, batch: KDBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(state [B, sum_m (3 + D_m + C)], cos [B, K])`` of a batch (detached)."""
        if batch.teacher_loss is None or not batch.adapted_features:
            raise ValueError('RLAgentWeighting needs teacher losses and adapted features '
                             '(the distiller fills them when feature KD is on).')
        with torch.no_grad():
            embeddings = [pool_locations(maps[-1]) for maps in batch.teacher_features]
            students = [pool_locations(maps[-1]) for maps in batch.adapted_features]
            cos = torch.stack([F.cosine_similarity(s.float(), e.float(), dim=1)
                               for s, e in zip(students, embeddings)], dim=1)
            parts = []
            for m, embedding in enumerate(embeddings):
                parts += [cos[:, m:m + 1], batch.logit_kd[:, m:m + 1].float(),
                          batch.teacher_loss[:, m:m + 1].float(), embedding.float(),
                          batch.teacher_logits[m].float()]
            return torch.cat(parts, dim=1), cos

    @staticmethod
    def rules(batch: KDBatch, cos: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The rule weights mixed with the agent's actions: ``[B, 2, K]`` for the
        logit set (confidence, logit gap) and for the feature set (confidence,
        feature similarity)."""
        with torch.no_grad():
            confidence = confidence_weights(batch.teacher_loss.float())
            gap = F.softmax(batch.logit_kd.float(), dim=1)
            similarity = F.softmax(cos, dim=1)
            return (torch.stack([confidence, gap], dim=1),
                    torch.stack([confidence, similarity], dim=1))

    def mixing(self) -> torch.Tensor:
        """``[2, 3]`` mixing weights (rows: logit set, feature set)."""
        if self.dynamic:
            return F.softmax(self.mixing_scores, dim=1)
        return self.agent.logit_head.weight.new_full((2, 3), 1.0 / 3)

    def mix(self, actions: torch.Tensor, logit_rules: torch.Tensor,
            feature_rules: torch.Tensor) -> torch.Tensor:
        """Actions ``[2, B, K]`` mixed with the rules -> weights ``[2, B, K]``."""
        rules = torch.stack([logit_rules, feature_rules]).to(actions)  # [2, B, 2, K]
        parts = torch.cat([actions[:, :, None], rules], dim=2)  # [2, B, 3, K]
        return (self.mixing()[:, None, :, None] * parts).sum(2)

    # --------------------------------------------------------------- forward
    def forward(self, batch: KDBatch) -> TeacherWeights:
        if self.agent is None:
            raise RuntimeError('RLAgentWeighting.setup() was not called (the distiller does).')
        if self.training and self._epoch is None:
            raise RuntimeError("RLAgentWeighting is trained by RLAgentHook: add "
                               "dict(type='mmkd_ext.RLAgentHook') to custom_hooks.")
        state, cos = self.agent_state(batch)
        logit_rules, feature_rules = self.rules(batch, cos)
        transition = AgentTransition(state, logit_rules, feature_rules)
        if self.training and self.in_warmup:
            ones = torch.ones_like(batch.logit_kd)
            return TeacherWeights(logit=ones, feature=ones, transition=transition)
        scores = self.agent(state.to(self.agent.logit_head.weight.dtype))
        actions = self.policy.act(scores, explore=self.training, seed=self._seed)
        if self.policy.stochastic and self.training:
            transition.actions = actions
        weights = self.mix(actions, logit_rules, feature_rules).to(batch.logit_kd.dtype)
        if not self.is_learning:
            weights = weights.detach()
        return TeacherWeights(logit=weights[0], feature=weights[1], transition=transition)

    def agent_loss(self, transition: Dict[str, torch.Tensor], baseline: float = 0.0) -> torch.Tensor:
        """The agent's objective on one stored step (both heads), differentiable with
        respect to the agent (and the mixing weights when ``dynamic``).

        Args:
            transition: a stored step: the fields of its
                :class:`~mmkd_ext.structures.AgentTransition` by name
                (:meth:`~mmkd_ext.structures.AgentTransition.as_dict`) and ``reward``
                ``[B]``.
            baseline: the running mean reward (stochastic policies).
        """
        scores = self.agent(transition['state'])  # [2, B, K]
        applied = self.mix(self.policy.mean_action(scores), transition['logit_rules'],
                           transition['feature_rules'])
        actions = transition.get('actions')
        return sum(
            self.policy.objective(scores[h], None if actions is None else actions[h],
                                  applied[h], transition['reward'], baseline)
            for h in range(2))
