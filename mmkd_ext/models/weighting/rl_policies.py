"""Policies of the MTKD-RL agent: how its head scores become teacher weights and
what objective trains them."""
from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Dirichlet

from mmkd_ext.registry import MODELS


class BasePolicy(nn.Module):
    """Maps agent head scores ``[..., K]`` to actions (weights on the simplex).

    ``stochastic`` policies sample their action during training and are trained by
    REINFORCE on the sampled action; deterministic ones output their mean.
    """
    stochastic: bool = False

    def mean_action(self, scores: torch.Tensor) -> torch.Tensor:
        """``[..., K]`` rows summing to 1: the action used when not exploring."""
        return F.softmax(scores, dim=-1)

    def act(self, scores: torch.Tensor, explore: bool,
            seed: Optional[int] = None) -> torch.Tensor:
        """The action for ``scores`` ``[..., K]``; ``seed`` fixes any sampling."""
        return self.mean_action(scores)

    def objective(self, scores: torch.Tensor, action: Optional[torch.Tensor],
                  applied: torch.Tensor, reward: torch.Tensor,
                  baseline: float) -> torch.Tensor:
        """Scalar loss of one head on one stored batch.

        Args:
            scores: ``[B, K]`` head scores under the current parameters.
            action: ``[B, K]`` the action taken in the step (stochastic policies).
            applied: ``[B, K]`` the weights the current parameters would apply
                (action mixed with the rules), differentiable.
            reward: ``[B]`` per-sample reward of the step.
            baseline: running mean reward (stochastic policies).
        """
        raise NotImplementedError


@MODELS.register_module()
class DeterministicPolicy(BasePolicy):
    """MTKD-RL's reference policy: the action is ``softmax(scores)`` and the loss is
    ``mean_{i,k}(-r_i * log w_ik)`` over the applied weights ``w``.

    Its "log-likelihood" is of its own output with target 1, so rewarded samples
    pull their weights towards balanced ones rather than reinforcing one teacher.
    """

    def objective(self, scores, action, applied, reward, baseline):
        return -(reward[:, None] * applied.clamp_min(1e-12).log()).mean()


@MODELS.register_module()
class DirichletPolicy(BasePolicy):
    """A true stochastic policy: ``a ~ Dirichlet(concentration * p)`` with
    ``p = (1 - exploration) * softmax(scores) + exploration / K``, trained by
    REINFORCE with a baseline: ``loss = -mean_i (r_i - b) * log p(a_i | s_i)``.

    ``p`` is the policy's mean action, used outside training. ``concentration``
    is the total Dirichlet mass (larger explores less); the ``exploration`` share
    of uniform weight keeps every concentration at least
    ``concentration * exploration / K``, so the policy cannot collapse onto one
    teacher and its log-density stays finite.

    Args:
        concentration (float): total concentration ``alpha_0``.
        exploration (float): share of the uniform distribution in ``p``, in [0, 1).
        min_weight (float): sampled weights are clipped to at least ``min_weight``
            and renormalised.
    """
    stochastic = True

    def __init__(self, concentration: float = 10.0, exploration: float = 0.1,
                 min_weight: float = 1e-6):
        super().__init__()
        if concentration <= 0 or not 0 <= exploration < 1:
            raise ValueError('DirichletPolicy needs concentration > 0 and exploration in '
                             f'[0, 1), got {concentration} and {exploration}.')
        self.concentration = float(concentration)
        self.exploration = float(exploration)
        self.min_weight = float(min_weight)

    def mean_action(self, scores):
        k = scores.shape[-1]
        return (1 - self.exploration) * F.softmax(scores, dim=-1) + self.exploration / k

    def distribution(self, scores: torch.Tensor) -> Dirichlet:
        """In float32 at least (also under autocast)."""
        dtype = torch.promote_types(scores.dtype, torch.float32)
        return Dirichlet(self.concentration * self.mean_action(scores.to(dtype)))

    def act(self, scores, explore, seed=None):
        if not explore:
            return self.mean_action(scores)
        with torch.no_grad(), _seeded(seed, scores.device):
            action = self.distribution(scores).sample()
        # Kept in float32: rounded to a half type, rows leave the simplex and the
        # stored action has no density under autocast.
        action = action.clamp_min(self.min_weight)
        return action / action.sum(-1, keepdim=True)

    def objective(self, scores, action, applied, reward, baseline):
        if action is None:
            raise ValueError('DirichletPolicy needs the sampled actions of the step.')
        distribution = self.distribution(scores)
        log_prob = distribution.log_prob(action.to(distribution.concentration.dtype))  # [B]
        return -((reward - baseline) * log_prob).mean()


@contextmanager
def _seeded(seed: Optional[int], device: torch.device):
    """Run a block with the CPU RNG (and ``device``'s, if CUDA) forked and seeded,
    so sampling neither depends on nor advances the global streams; no-op for
    ``seed=None``."""
    if seed is None:
        yield
        return
    cuda = device.type == 'cuda'
    with torch.random.fork_rng(devices=[device] if cuda else [], device_type='cuda'):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


POLICY_ALIASES = {'deterministic': 'DeterministicPolicy', 'stochastic': 'DirichletPolicy'}
