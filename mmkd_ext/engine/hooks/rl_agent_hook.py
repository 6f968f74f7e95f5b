"""RLAgentHook: collects MTKD-RL's experience and trains the agent."""
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.registry import OPTIMIZERS

from mmkd_ext.utils.dist_utils import average_gradients
from mmkd_ext.registry import HOOKS
from mmkd_ext.models.weighting.rl_agent import RLAgentWeighting
from .base import WeightingTrainerHook


def standardized_reward(reward: torch.Tensor) -> torch.Tensor:
    """``[B]`` -> ``[B]``: ``(r - mean) / std`` within the batch, clipped to [0, 1]
    (zeros when the batch has fewer than 2 samples or no spread). No host sync."""
    if reward.numel() < 2:
        return torch.zeros_like(reward)
    centred = reward - reward.mean()
    return (centred / reward.std().clamp_min(1e-12)).clamp(0.0, 1.0)


@HOOKS.register_module()
class RLAgentHook(WeightingTrainerHook):
    """Trains the agent of :class:`~mmkd_ext.models.weighting.RLAgentWeighting`.

    After every training iteration it stores the step's transition: the agent
    state, the rule weights, the sampled actions (stochastic policies) and the
    reward, i.e. minus each sample's total loss
    ``task loss + alpha * sum_m wL KD_m + beta * sum_m wF FeatKD_m`` of the step
    (the reference's with the configured KD weights; ``alpha`` is 1 there; the task
    loss is the task view's per-sample loss, cross-entropy for classification),
    standardised within the batch and clipped to [0, 1]. Every ``agent_interval``
    iterations, at each epoch end (every ``len(train_dataloader)`` iterations)
    and whenever ``max_stored`` transitions are stored, it makes one pass over the
    store, one optimizer step (SGD, lr 0.1 by default) per stored batch, then
    clears it.

    Memory: each stored batch holds ``B * (S + 4K + 1)`` floats, plus ``2BK``
    for stochastic policies, with ``S = sum_m (3 + D_m + C)`` the state width; the
    store grows linearly up to ``max_stored`` batches, on ``store_device``
    (e.g. 1000 batches of 64 samples, 3 teachers with 256-channel embeddings and
    100 classes: about 280 MB).

    Stochastic policies: nothing is stored during the warm-up (the weights
    applied were not the policy's); the baseline is a running mean of the batch
    mean reward (averaged over ranks), updated after each stored batch's step.

    Multi-process: every rank stores its own batches; the agent's gradients are
    averaged over ranks at each step, so all ranks keep identical agents. The
    exploration noise of step ``t`` on rank ``r`` is seeded from ``(seed, r, t)``.

    Checkpoints hold the optimizer state, the store and the baseline; they are
    restored on ``--resume`` (not on a plain ``load_from``). Only rank 0 writes
    checkpoints: in a multi-process run a checkpoint taken while transitions are
    pending keeps rank 0's, which every rank resumes from (the ranks stay identical
    but the run departs from an uninterrupted one until the next update). Epoch
    checkpoints with the default epoch-end update never hold pending transitions.

    Logged: ``agent_reward`` (batch mean of minus the per-sample total loss) every
    iteration, ``agent_loss`` (mean objective of an update pass) per update.

    Args:
        agent_interval (int): iterations between updates.
        update_at_epoch_end (bool): also update every ``len(train_dataloader)``
            iterations.
        max_stored (int): update early when this many batches are stored.
        store_device (str): where transitions are kept (``'cpu'`` or e.g.
            ``'cuda'``; ``None`` keeps them where they were computed).
        optimizer (dict): the agent's optimizer.
        baseline_momentum (float): momentum of the running-mean baseline.
        seed (int, optional): seed of the exploration noise; by default the
            runner's seed (``randomness.seed``).
    """
    weighting_type = RLAgentWeighting
    checkpoint_key = 'rl_agent_hook'

    def __init__(self,
                 agent_interval: int = 1000,
                 update_at_epoch_end: bool = True,
                 max_stored: int = 1000,
                 store_device: Optional[str] = 'cpu',
                 optimizer: dict = dict(type='SGD', lr=0.1),
                 baseline_momentum: float = 0.9,
                 seed: Optional[int] = None):
        if agent_interval < 1 or max_stored < 1:
            raise ValueError('agent_interval and max_stored must be >= 1.')
        if not 0.0 <= baseline_momentum < 1.0:
            raise ValueError('baseline_momentum must be in [0, 1).')
        self.agent_interval = agent_interval
        self.update_at_epoch_end = update_at_epoch_end
        self.max_stored = max_stored
        self.store_device = store_device
        self.optimizer_cfg = dict(optimizer)
        self.baseline_momentum = baseline_momentum
        self.seed = seed
        self.store: List[Dict[str, torch.Tensor]] = []
        self.baseline: Optional[float] = None
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.iters_per_epoch = 1  # len(train_dataloader), set in before_train
        self._noise_seed = 0 if seed is None else seed

    # ------------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        weighting = self.distiller(runner).weighting
        self.optimizer = OPTIMIZERS.build(dict(self.optimizer_cfg,
                                               params=weighting.parameters()))
        self.iters_per_epoch = max(len(runner.train_dataloader), 1)
        self._noise_seed = self.seed if self.seed is not None else int(runner.seed or 0)
        self.restore_on_resume(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        seed = ((self._noise_seed * 1_000_003 + get_rank()) * 1_000_003 + runner.iter) % 2**62
        self.distiller(runner).weighting.begin_step(runner.iter / self.iters_per_epoch, seed)

    # ------------------------------------------------------------ every step
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = self.distiller(runner)
        if model.step_health.skipped:  # a non-finite step, skipped
            return
        weighting = model.weighting
        step = model.last_step
        reward = -(step.batch.student_loss + sum(
            model.per_sample_distill_losses(step.batch, step.weights).values()))
        runner.message_hub.update_scalar('train/agent_reward', reward.mean())
        taken = step.weights.transition  # stored with its reward, as a dict
        if not (weighting.policy.stochastic and taken.actions is None):
            self.store.append(self._to_store(
                dict(taken.as_dict(), reward=standardized_reward(reward.float()))))
        done = runner.iter + 1
        if self.store and (done % self.agent_interval == 0 or len(self.store) >= self.max_stored
                           or (self.update_at_epoch_end and done % self.iters_per_epoch == 0)):
            runner.message_hub.update_scalar('train/agent_loss', self.update_agent(weighting))

    def _to_store(self, transition: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {k: v.to(self.store_device or v.device) for k, v in transition.items()}

    def update_agent(self, weighting: RLAgentWeighting) -> float:
        """One optimizer step per stored batch, then clear the store; returns the
        mean objective."""
        device = weighting.agent.logit_head.weight.device
        batch_rewards = self._mean_rewards() if weighting.policy.stochastic else None
        losses = []
        with weighting.learning():
            for idx, transition in enumerate(self.store):
                transition = {k: v.to(device) for k, v in transition.items()}
                self.optimizer.zero_grad(set_to_none=True)
                loss = weighting.agent_loss(transition, self.baseline or 0.0)
                loss.backward()
                average_gradients(weighting.parameters())
                self.optimizer.step()
                losses.append(loss.detach())
                if batch_rewards is not None:  # the baseline follows, never leads
                    m = self.baseline_momentum
                    reward = float(batch_rewards[idx])
                    self.baseline = reward if self.baseline is None else (
                        m * self.baseline + (1 - m) * reward)
        self.optimizer.zero_grad(set_to_none=True)
        self.store = []
        return torch.stack(losses).mean().item()

    def _mean_rewards(self) -> torch.Tensor:
        """Mean reward of each stored batch, averaged over ranks (one collective)."""
        means = torch.stack([t['reward'].float().mean() for t in self.store])
        if get_world_size() > 1:
            all_reduce(means, op='mean')
        return means.cpu()

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return dict(optimizer=self.optimizer.state_dict(),
                    store=[{k: v.cpu() for k, v in t.items()} for t in self.store],
                    baseline=self.baseline)

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state['optimizer'])
        self.store = [self._to_store(t) for t in state['store']]
        self.baseline = state['baseline']
