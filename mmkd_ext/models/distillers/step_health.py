"""The health of the distiller's training steps: the finite check and the skip policy."""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_world_size

#: What to do with a training step that has a non-finite term.
NON_FINITE_POLICIES = ('raise', 'skip')

_TERM_NAMES = {'kd': 'logit KD', 'feat': 'feature KD', 'w_logit': 'logit weight',
               'w_feat': 'feature weight'}


class StepHealth:
    """Checks every training step's terms and says whether the step was skipped.

    After each training step (:meth:`reduce_and_check`) :attr:`non_finite_terms`
    names the step's NaN or infinite terms (empty if none) and :attr:`skipped` tells
    whether the distiller replaced the step's loss by a zero one. With the policy
    ``'raise'`` (the default) a non-finite step stops training with a
    ``FloatingPointError``; with ``'skip'`` it is skipped. The one way to change
    the policy is :meth:`set_non_finite_policy` (what
    :class:`~mmkd_ext.engine.hooks.SkipNonFiniteStepsHook` calls).

    Args:
        teacher_names: the teachers' names, the first part of their log keys
            (``'<name>.kd'``, ``'<name>.w_logit'``, ...).
        check_finite: check the terms at all (the distiller's ``check_finite``).
    """

    def __init__(self, teacher_names: Sequence[str], check_finite: bool = True):
        self.teacher_names = list(teacher_names)
        self.check_finite = check_finite
        self.policy = 'raise'
        #: Descriptions of the last checked step's non-finite terms (empty if none).
        self.non_finite_terms: List[str] = []
        #: True when the last checked step had a non-finite term and was skipped.
        self.skipped = False

    def set_non_finite_policy(self, policy: str) -> None:
        """``'raise'``: a non-finite step stops training; ``'skip'``: it is skipped
        (needs ``check_finite=True``)."""
        if policy not in NON_FINITE_POLICIES:
            raise ValueError(f'The non-finite policy must be one of {NON_FINITE_POLICIES}, '
                             f'got {policy!r}.')
        if policy == 'skip' and not self.check_finite:
            raise ValueError("Skipping non-finite steps needs model.check_finite=True.")
        self.policy = policy

    @staticmethod
    def zero_loss(model: nn.Module) -> torch.Tensor:
        """0, connected to every trainable parameter of ``model``: the backward of a
        skipped step runs as usual (DDP reduces every bucket) and leaves zero
        gradients."""
        return sum((p * 0).sum() for p in model.parameters() if p.requires_grad)

    def reduce_and_check(self, losses: Dict[str, torch.Tensor], training: bool) -> None:
        """Average the per-teacher log values over ranks in place, and check that
        every term of the step is finite: one collective and one host sync.

        The reduced vector also carries each rank's sum of all terms, so a
        non-finite term on any rank stops (or skips) every rank at the same step.
        The host sync makes each step wait for every rank's forward in distributed
        runs; ``check_finite=False`` removes it (the reduction of the logs stays).

        Args:
            losses: the step's loss dict: the weighted terms, the student's own
                losses (``'student.*'``, a tensor or a list of tensors each) and the
                per-teacher log values (scalars).
            training: whether the distiller is in training mode (only training
                steps reduce over ranks).
        """
        distributed = get_world_size() > 1 and training
        if not (self.check_finite or distributed):
            return
        log_keys = [k for k in losses if k.split('.', 1)[0] in self.teacher_names]
        values = torch.stack([losses[k].float() for k in log_keys] + [
            sum(_total(v).detach().float() for k, v in losses.items() if k not in log_keys)])
        if distributed:
            all_reduce(values, op='mean')
            losses.update(zip(log_keys, values.unbind()))
        if not self.check_finite:
            return
        self.non_finite_terms, self.skipped = [], False
        if bool(torch.isfinite(values).all()):
            return
        self.non_finite_terms = self.describe_non_finite(losses) or [
            'a term on another rank (see that rank\'s log)']
        if self.policy == 'skip':
            self.skipped = True
            return
        raise FloatingPointError(
            f'Non-finite training terms: {"; ".join(self.non_finite_terms)}. Usual '
            'causes: a teacher checkpoint with NaN/inf weights or inputs it cannot handle, '
            'a learning rate or KD weight that is too large. Training stops here; the '
            'checkpoints already written are intact. To skip such steps instead (counted '
            "as skipped_steps in the log), add dict(type='mmkd_ext.SkipNonFiniteStepsHook') "
            'to custom_hooks.')

    def describe_non_finite(self, losses: Dict[str, torch.Tensor]) -> List[str]:
        """``"logit KD of teacher 'a' (a.kd = nan)"``-style names of the bad terms,
        the weighted sums (which follow from the others) last."""
        found = []
        for key, value in losses.items():
            value = _total(value).detach().float()
            if bool(torch.isfinite(value)):
                continue
            head, _, tail = key.partition('.')
            if head in self.teacher_names:
                desc = f'{_TERM_NAMES.get(tail, tail)} of teacher {head!r}'
            elif head == 'student':
                desc = f"the student's own {tail}"
            else:
                desc = f'the weighted {key}'
            found.append((head not in self.teacher_names and head != 'student',
                          f'{desc} ({key} = {value.item()})'))
        return [desc for _, desc in sorted(found, key=lambda item: item[0])]


def _total(value) -> torch.Tensor:
    """A loss entry as one tensor: the sum of a tensor or of a list of tensors
    (mmdet returns one loss per feature level)."""
    if isinstance(value, (list, tuple)):
        return torch.stack([v.sum() for v in value]).sum()
    return value.sum()
