"""Differentiable look-ahead steps of the student, for meta-learning the weights.

Everything here is functional (``torch.func.functional_call`` over a dict of
parameters and cloned buffers): the live model, its BN statistics and the
optimizer state are never written.
"""
from typing import Callable, Dict, Iterable

import torch
import torch.nn as nn
from torch.func import functional_call

Params = Dict[str, torch.Tensor]


class SGDHyperParams:
    """lr, momentum, dampening, weight decay and Nesterov of each parameter, read from
    a live ``torch.optim.SGD`` (its current values, after any LR schedule), with the
    momentum buffers it holds (cloned)."""

    def __init__(self, optimizer: torch.optim.Optimizer, named_params: Dict[str, nn.Parameter]):
        if not isinstance(optimizer, torch.optim.SGD):
            raise TypeError('The meta step mirrors the student optimizer and supports '
                            f'torch.optim.SGD, not {type(optimizer).__name__}.')
        if any(g.get('maximize') for g in optimizer.param_groups):
            raise ValueError('The meta step does not support SGD(maximize=True).')
        group_of = {id(p): g for g in optimizer.param_groups for p in g['params']}
        self.groups, self.momentum_buffers = {}, {}
        for name, param in named_params.items():
            group = group_of.get(id(param))
            if group is None:
                continue
            self.groups[name] = group
            buf = optimizer.state.get(param, {}).get('momentum_buffer')
            self.momentum_buffers[name] = None if buf is None else buf.detach().clone()

    def step(self, params: Params, grads: Params) -> Params:
        """One SGD step as ``torch.optim.SGD`` does it, keeping the graph.

        The momentum buffers advance too, so consecutive calls match consecutive
        optimizer steps.
        """
        new_params = {}
        for name, param in params.items():
            grad = grads.get(name)
            group = self.groups.get(name)
            if grad is None or group is None:
                new_params[name] = param
                continue
            if group['weight_decay']:
                grad = grad + group['weight_decay'] * param
            momentum = group['momentum']
            if momentum:
                buf = self.momentum_buffers[name]
                buf = grad if buf is None else momentum * buf + (1 - group['dampening']) * grad
                self.momentum_buffers[name] = buf
                grad = grad + momentum * buf if group['nesterov'] else buf
            new_params[name] = param - group['lr'] * grad
        return new_params


def differentiable_sgd_steps(params: Params, buffers: Params,
                             loss_fn: Callable[[Params], torch.Tensor],
                             sgd: SGDHyperParams, num_steps: int) -> Params:
    """``num_steps`` SGD steps on ``loss_fn(tensors)`` from ``params``, differentiable
    w.r.t. anything ``loss_fn`` depends on (create_graph)."""
    for _ in range(num_steps):
        loss = loss_fn({**params, **buffers})
        names = list(params)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True,
                                    allow_unused=True)
        params = sgd.step(params, {n: g for n, g in zip(names, grads) if g is not None})
    return params


def call(module: nn.Module, tensors: Params, *args, **kwargs):
    """``module(*args, **kwargs)`` with ``tensors`` substituted (others stay live)."""
    return functional_call(module, tensors, args, kwargs, strict=False)


def sum_losses(losses: Dict[str, torch.Tensor], keys: Iterable[str] = None) -> torch.Tensor:
    """Sum the loss entries (keys containing 'loss', or exactly ``keys``)."""
    selected = [v for k, v in losses.items() if (k in keys if keys else 'loss' in k)]
    total = 0
    for value in selected:
        total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
    return total
