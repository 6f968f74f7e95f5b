"""Differentiable look-ahead steps of the student, for meta-learning the weights.

Everything here is functional (``torch.func.functional_call`` over a dict of
parameters and cloned buffers): the live model, its BN statistics and the
optimizer state are never written. :func:`mirror_optimizer` reads the live student
optimizer (SGD, Adam or AdamW) into a mirror whose ``step`` does the same update
while keeping the autograd graph; :func:`lookahead_task_loss` is MMKD's outer
objective built from them, with the second derivatives of
:mod:`~mmkd_ext.engine.optimizers.second_order` (twice-differentiable substitutes, and
an audit of each unrolled step for ops that have none).

MMKD's parts: the weight networks (:class:`~mmkd_ext.models.weighting.MetaWeightNet`),
their bi-level training (:class:`~mmkd_ext.engine.hooks.MetaWeightHook`: hard
buffer, quiz batch, meta optimizer), the objective here, and the distiller's
look-ahead support (``forward(mode='distill')`` and ``lookahead()`` of
:class:`~mmkd_ext.models.distillers.MultiTeacherDistiller`).
"""
import math
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
from torch.func import functional_call

from .second_order import (DISTILLATION, TASK_LOSS, SecondOrderAudit, SecondOrderReport,
                           is_second_order_error, twice_differentiable_ops)

Params = Dict[str, torch.Tensor]


class OptimizerMirror:
    """The hyper-parameters of each parameter's group in a live optimizer (their
    current values, after any LR schedule) and clones of its per-parameter state.

    Subclasses implement :meth:`update` for one parameter; :meth:`step` applies it to
    every parameter that has a group and a gradient, and advances the mirrored state
    so that consecutive calls match consecutive optimizer steps.
    """
    state_keys: tuple = ()

    def __init__(self, optimizer: torch.optim.Optimizer, named_params: Dict[str, nn.Parameter]):
        if any(g.get('maximize') for g in optimizer.param_groups):
            raise ValueError(f'The meta step does not support {type(optimizer).__name__}'
                             '(maximize=True).')
        group_of = {id(p): g for g in optimizer.param_groups for p in g['params']}
        self.groups: Dict[str, dict] = {}
        self.state: Dict[str, Dict[str, Optional[torch.Tensor]]] = {}
        for name, param in named_params.items():
            group = group_of.get(id(param))
            if group is None:
                continue
            self.groups[name] = group
            live = optimizer.state.get(param, {})
            self.state[name] = {
                key: (live[key].detach().clone() if torch.is_tensor(live.get(key))
                      else live.get(key)) for key in self.state_keys}

    def update(self, param: torch.Tensor, grad: torch.Tensor, group: dict,
               state: dict) -> torch.Tensor:
        """The parameter after one step (``state`` is advanced in place)."""
        raise NotImplementedError

    def step(self, params: Params, grads: Params) -> Params:
        """One optimizer step on every parameter with a gradient, keeping the graph."""
        new_params = {}
        for name, param in params.items():
            grad, group = grads.get(name), self.groups.get(name)
            new_params[name] = (param if grad is None or group is None
                                else self.update(param, grad, group, self.state[name]))
        return new_params


class SGDMirror(OptimizerMirror):
    """``torch.optim.SGD``: lr, momentum, dampening, weight decay and Nesterov."""
    state_keys = ('momentum_buffer', )

    def update(self, param, grad, group, state):
        if group['weight_decay']:
            grad = grad + group['weight_decay'] * param
        momentum = group['momentum']
        if momentum:
            buf = state['momentum_buffer']
            buf = grad if buf is None else momentum * buf + (1 - group['dampening']) * grad
            state['momentum_buffer'] = buf
            grad = grad + momentum * buf if group['nesterov'] else buf
        return param - group['lr'] * grad


class AdamMirror(OptimizerMirror):
    """``torch.optim.Adam`` and ``torch.optim.AdamW``: betas, eps, (decoupled) weight
    decay, AMSGrad and the bias corrections of the live step count.

    The square root of the second moment is taken as ``sqrt(max(v, tiny))``: equal in
    value (``tiny`` is far below ``eps**2``), and its gradient stays finite where a
    gradient entry is exactly zero (``sqrt'(0)`` is infinite, which turns the
    hypergradient into NaN).
    """
    state_keys = ('step', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq')

    def __init__(self, optimizer: torch.optim.Optimizer, named_params: Dict[str, nn.Parameter]):
        super().__init__(optimizer, named_params)
        self.decoupled = isinstance(optimizer, torch.optim.AdamW)

    def update(self, param, grad, group, state):
        lr, (beta1, beta2), decay = group['lr'], group['betas'], group['weight_decay']
        step = (0.0 if state['step'] is None else float(state['step'])) + 1
        state['step'] = step
        if decay:
            if group.get('decoupled_weight_decay', self.decoupled):
                param = param * (1 - lr * decay)
            else:
                grad = grad + decay * param
        exp_avg = state['exp_avg'] if state['exp_avg'] is not None else torch.zeros_like(grad)
        exp_avg_sq = (state['exp_avg_sq'] if state['exp_avg_sq'] is not None
                      else torch.zeros_like(grad))
        exp_avg = beta1 * exp_avg + (1 - beta1) * grad
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
        state['exp_avg'], state['exp_avg_sq'] = exp_avg, exp_avg_sq
        second = exp_avg_sq
        if group['amsgrad']:
            previous = state['max_exp_avg_sq']
            second = exp_avg_sq if previous is None else torch.maximum(previous, exp_avg_sq)
            state['max_exp_avg_sq'] = second
        tiny = torch.finfo(second.dtype).tiny
        denom = second.clamp_min(tiny).sqrt() / math.sqrt(1 - beta2**step) + group['eps']
        return param - (lr / (1 - beta1**step)) * exp_avg / denom


def mirror_optimizer(optimizer: torch.optim.Optimizer,
                     named_params: Dict[str, nn.Parameter]) -> OptimizerMirror:
    """The differentiable mirror of a live student optimizer (SGD, Adam or AdamW)."""
    if isinstance(optimizer, torch.optim.SGD):
        return SGDMirror(optimizer, named_params)
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return AdamMirror(optimizer, named_params)
    raise TypeError('The meta step mirrors the student optimizer and supports '
                    f'SGD, Adam and AdamW, not {type(optimizer).__name__}: use one of '
                    'those in optim_wrapper.optimizer.')


def differentiable_steps(params: Params, buffers: Params,
                         loss_fn: Callable[[Params], torch.Tensor],
                         optimizer: OptimizerMirror, num_steps: int,
                         audit: Optional[SecondOrderAudit] = None,
                         stage: str = TASK_LOSS, second_order: bool = True) -> Params:
    """``num_steps`` optimizer steps on ``loss_fn(tensors)`` from ``params``,
    differentiable w.r.t. anything ``loss_fn`` depends on (create_graph).

    With an ``audit``, each step's graph is checked for ops without a second
    derivative (:meth:`SecondOrderAudit.check`): a ``TASK_LOSS`` step with one is
    taken first-order, a ``DISTILLATION`` step is refused. ``second_order=False``
    takes every step first-order (gradients detached: the steps' curvature is
    dropped, the new parameters still depend on the old ones)."""
    for step in range(num_steps):
        loss = loss_fn({**params, **buffers})
        names = list(params)
        inputs = [params[n] for n in names]
        if not second_order:
            grads = torch.autograd.grad(loss, inputs, allow_unused=True)
            params = optimizer.step(params, {n: g for n, g in zip(names, grads)
                                             if g is not None})
            continue
        try:
            grads = torch.autograd.grad(loss, inputs, create_graph=True, allow_unused=True)
        except RuntimeError as error:
            if audit is None or not is_second_order_error(error):
                raise
            grads = audit.failed(stage, step, num_steps, error,
                                 lambda: torch.autograd.grad(loss, inputs, allow_unused=True))
        else:
            if audit is not None:
                grads = audit.check(stage, step, num_steps, loss, grads)
        params = optimizer.step(params, {n: g for n, g in zip(names, grads) if g is not None})
    return params


def call(module: nn.Module, tensors: Params, *args, **kwargs):
    """``module(*args, **kwargs)`` with ``tensors`` substituted (others stay live).

    The module's own parameters and buffers are put back afterwards here, not only
    by ``functional_call``: torch restores a parameter reached under several names (a
    submodule shared by several parents, e.g. the convs RTMDet's head shares across
    levels) in the order it swapped them, which leaves the substituted tensor in the
    live model."""
    slots = [(members, key, value) for m in module.modules()
             for members in (m._parameters, m._buffers) for key, value in members.items()]
    try:
        return functional_call(module, tensors, args, kwargs, strict=False)
    finally:
        for members, key, value in slots:
            members[key] = value


def sum_losses(losses: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum the loss entries (keys containing 'loss'; a list entry is summed)."""
    total = 0
    for key, value in losses.items():
        if 'loss' in key:
            total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
    return total


def _student_tensors(tensors: Params) -> Params:
    return {k[len('student.'):]: v for k, v in tensors.items() if k.startswith('student.')}


def student_task_loss(distiller: nn.Module, tensors: Params, inputs: torch.Tensor,
                      data_samples: list) -> torch.Tensor:
    """The student's summed task losses with the distiller's ``tensors`` (``student.``
    keys, with parameters and buffers) substituted."""
    losses = call(distiller.student, _student_tensors(tensors), inputs, data_samples,
                  mode='loss')
    return sum_losses(losses)


def lookahead_task_loss(distiller: nn.Module, optimizer: torch.optim.Optimizer,
                        inputs: torch.Tensor, data_samples: list, kd_steps: int,
                        task_steps: int,
                        report: Optional[SecondOrderReport] = None,
                        task_steps_second_order: bool = True,
                        teacher_outputs: Optional[tuple] = None) -> torch.Tensor:
    """MMKD's outer objective: the student's task loss on a (quiz) batch after
    unrolled steps from the live student (and adapters), differentiable with respect
    to the weighting's networks.

    1. ``kd_steps`` steps on the weighted distillation terms alone
       (``distiller(..., mode='distill')``, weighted by the networks);
    2. then ``task_steps`` steps on the student's task loss;

    each a step of the live ``optimizer``'s mirror (its current hyper-parameters and
    state); ``task_steps_second_order=False`` takes the task-loss steps first-order
    (their curvature dropped: the hypergradient passes them as the identity). Runs
    inside ``distiller.weighting.learning()`` and ``distiller.lookahead()`` (the
    teachers run once for the batch; the distiller's last step is untouched). The live parameters, buffers (cloned) and optimizer
    state are not written.

    Second derivatives (:mod:`~mmkd_ext.engine.optimizers.second_order`): the
    steps run inside :func:`twice_differentiable_ops` (ops without a second
    derivative replaced by equivalents with one), and each step is audited: a
    task-loss step through an op that still has none is taken first-order, a
    distillation step through one raises :class:`SecondOrderError`. What was
    replaced and what went first-order is added to ``report`` and logged once per
    op and step (a fresh report, logged at every call, when none is given).

    Args:
        inputs: ``[B, C, H, W]``, the preprocessed quiz batch.
        teacher_outputs: ``(inputs, (heads, maps))``, the teachers' outputs on
            ``inputs`` when already known (the teachers do not run then).

    Returns:
        The scalar outer loss; its backward sends the hypergradient to the nets.
    """
    report = SecondOrderReport() if report is None else report
    named = {n: p for n, p in distiller.named_parameters()
             if p.requires_grad and not n.startswith('weighting.')}
    params = {n: p.detach().requires_grad_() for n, p in named.items()}
    buffers = {n: b.clone() for n, b in distiller.named_buffers()}
    mirror = mirror_optimizer(optimizer, named)
    audit = SecondOrderAudit()

    def distill_loss(tensors):
        return sum_losses(call(distiller, tensors, inputs, data_samples, mode='distill'))

    def task_loss(tensors):
        return student_task_loss(distiller, tensors, inputs, data_samples)

    with distiller.weighting.learning(), distiller.lookahead(teacher_outputs), \
            twice_differentiable_ops() as substituted:
        try:
            params = differentiable_steps(params, buffers, distill_loss, mirror, kd_steps,
                                          audit, DISTILLATION)
            params = differentiable_steps(
                params, buffers, task_loss, mirror, task_steps, audit, TASK_LOSS,
                second_order=task_steps_second_order)
            outer = task_loss({**params, **buffers})
        finally:
            report.update(substituted, audit)
            report.log_new()
    return outer
