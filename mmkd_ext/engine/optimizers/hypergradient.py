"""MMKD's hypergradient: the exact one and three cheaper computations of it.

The meta objective is the student's task loss on a quiz batch after look-ahead
steps (``kd_steps`` on the weighted distillation terms, then ``task_steps`` on the
task loss) from the live student; its gradient with respect to the weight
networks' parameters ``phi`` is the hypergradient. :func:`meta_objective` returns,
for each mode, a scalar whose gradient with respect to ``phi`` is that mode's
hypergradient:

- ``'exact'``: back-propagation through every unrolled step (second derivatives
  through the distillation and the task-loss steps);
  :func:`~mmkd_ext.engine.optimizers.lookahead.lookahead_task_loss`.
- ``'first_order_task'``: the same, with the task-loss steps taken first-order:
  their curvature is dropped (the hypergradient passes them as the identity); the
  distillation steps stay second-order.
- ``'finite_difference'`` (DARTS-style, :func:`finite_difference_objective`): no
  second derivative at all. Steps are taken first-order; the outer gradient ``v``
  is carried back through the optimizer's update rule alone (the Hessians of the
  losses along the unroll are dropped), and each distillation step's mixed
  derivative ``u^T d/dphi grad_theta L_kd`` is a central difference of the
  per-sample distillation terms along ``u``. With one distillation step and no
  task-loss step this is the exact hypergradient up to the finite difference, for
  any optimizer the mirror follows (tested with SGD with Nesterov momentum and with
  AdamW).
- ``'finite_difference_hvp'``: the same reverse pass with the curvature kept: each
  step's Hessian-vector product is a central difference of its gradients along the
  adjoint, so every term of the exact hypergradient is there, each up to the
  differences' truncation error, still with no second derivative.
"""
from dataclasses import replace
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn

from mmkd_ext.structures import KDBatch, TeacherWeights
from mmkd_ext.utils.random_state import capture_random_state, restore_random_state
from .lookahead import call, lookahead_task_loss, mirror_optimizer, student_task_loss
from .second_order import SecondOrderReport

#: The hypergradient options of :class:`~mmkd_ext.engine.hooks.MetaWeightHook`.
HYPERGRADIENT_MODES = ('exact', 'first_order_task', 'finite_difference',
                       'finite_difference_hvp')

#: What each mode approximates, for the logs and the docs.
APPROXIMATIONS = {
    'exact': 'nothing (second derivatives through every unrolled step)',
    'first_order_task': "the task-loss look-ahead steps' curvature (taken first-order)",
    'finite_difference': ("the losses' curvature along the unrolled steps (the outer "
                          "gradient is carried back through the optimizer's update only) "
                          'and the mixed second derivative, a central difference of the '
                          'per-sample distillation terms'),
    'finite_difference_hvp': ('the second derivatives (the Hessian-vector products along '
                              'the unrolled steps and the mixed derivative) by central '
                              'differences of first derivatives: exact up to their '
                              "truncation error, where a difference crossing a ReLU "
                              "network's kink is not"),
}


def check_mode(mode: str) -> None:
    if mode not in HYPERGRADIENT_MODES:
        raise ValueError(f'hypergradient={mode!r}: choose one of {list(HYPERGRADIENT_MODES)}.')


def meta_objective(mode: str, distiller: nn.Module, optimizer: torch.optim.Optimizer,
                   inputs: torch.Tensor, data_samples: list, kd_steps: int, task_steps: int,
                   report: Optional[SecondOrderReport] = None,
                   teacher_outputs: Optional[tuple] = None,
                   epsilon: float = 1e-2) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(outer, surrogate)``: the outer loss (a scalar, for the logs) and a scalar
    whose gradient with respect to the weight networks is the hypergradient of
    ``mode`` (the outer loss itself for ``'exact'`` and ``'first_order_task'``).

    Args:
        inputs: ``[B, C, H, W]``, the preprocessed quiz batch.
        teacher_outputs: ``(inputs, (heads, maps))``, the teachers' outputs on
            ``inputs`` when already known.
        epsilon: ``'finite_difference'`` and ``'finite_difference_hvp'``: the norm of
            the parameter perturbation of the central differences.
    """
    check_mode(mode)
    if mode in ('finite_difference', 'finite_difference_hvp'):
        return finite_difference_objective(distiller, optimizer, inputs, data_samples,
                                           kd_steps, task_steps, teacher_outputs, epsilon,
                                           curvature=mode == 'finite_difference_hvp')
    outer = lookahead_task_loss(distiller, optimizer, inputs, data_samples, kd_steps,
                                task_steps, report=report,
                                task_steps_second_order=mode == 'exact',
                                teacher_outputs=teacher_outputs)
    return outer, outer


def finite_difference_objective(distiller: nn.Module, optimizer: torch.optim.Optimizer,
                                inputs: torch.Tensor, data_samples: list, kd_steps: int,
                                task_steps: int, teacher_outputs: Optional[tuple] = None,
                                epsilon: float = 1e-2,
                                curvature: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """The finite-difference hypergradients, with no second derivative.

    1. ``kd_steps`` distillation steps then ``task_steps`` task-loss steps from the
       live student, each first-order: ``g_s = grad_theta L_s(theta_s)`` (the
       distillation loss with the step's weights as constants, as the exact
       hypergradient sees them), then ``(theta_s+1, m_s+1) = U(theta_s, m_s, g_s)``,
       the optimizer mirror's update (``m``: momentum buffers, Adam's moments).
    2. Reverse mode from ``lambda_T = grad_theta`` of the task loss at ``theta_T``:
       at each step, back-propagating ``lambda_s+1`` through ``U`` alone gives the
       adjoints of ``theta_s``, ``m_s`` and of the step's gradient, ``u_s``; a
       distillation step adds ``u_s^T d/dphi g_s`` to the hypergradient;
       ``curvature=True`` (``'finite_difference_hvp'``) also adds the Hessian-vector
       product ``H_s u_s`` to the adjoint of ``theta_s``, which ``curvature=False``
       (``'finite_difference'``) drops: then every step passes the adjoint through
       its update rule alone.
    3. Both second-order products are central differences of first derivatives
       along ``u_s``, at ``theta_s +- e u_s`` with ``e = epsilon / |u_s|`` and, on
       both sides, the random numbers (dropout, drop path) of the step's own
       forward: ``H_s u_s`` the difference of ``g_s``, and, since ``L_kd`` is
       ``mean_i sum_k w_ik(phi) * term_ik(theta)`` (the nets' inputs are detached),
       ``u_s^T d/dphi g_s = d/dphi mean_i sum_k w_ik * D_ik`` with ``D_ik`` the
       difference of ``term_ik``. The two sides of a step give both. The first step
       needs no Hessian product (nothing depends on ``theta_0``). The generators are
       left as the outer forward left them, as in the other modes.

    With ``curvature=True`` this is the exact hypergradient up to the differences'
    truncation error (O(e^2)); with ``curvature=False`` it is exact for one
    distillation step and no task-loss step, for any optimizer the mirror follows.

    Returns:
        ``(outer, surrogate)``: the outer loss and ``sum_s mean_i sum_k (alpha
        wL_ik DL_ik + beta wF_ik DF_ik)``, whose gradient is the hypergradient.
    """
    named = {n: p for n, p in distiller.named_parameters()
             if p.requires_grad and not n.startswith('weighting.')}
    buffers = {n: b.clone() for n, b in distiller.named_buffers()}
    mirror = mirror_optimizer(optimizer, named)
    theta = {n: p.detach() for n, p in named.items()}

    def task_loss(point):
        return student_task_loss(distiller, {**point, **buffers}, inputs, data_samples)

    def distill_terms(point, frozen=None):
        """``(loss, detached terms, weights)`` at ``point``; the loss weighted by
        ``frozen`` (the step's weights as constants; by default those at ``point``)."""
        batch, weights = call(distiller, {**point, **buffers}, inputs, data_samples,
                              mode='distill_terms')
        if frozen is None:
            frozen = TeacherWeights(logit=weights.logit.detach(),
                                    feature=weights.feature.detach())
        loss = sum(v.mean() for v in distiller.per_sample_distill_losses(batch, frozen).values())
        return loss, _detached_terms(batch), weights, frozen

    def gradient(loss, point):
        grads = torch.autograd.grad(loss, list(point.values()), allow_unused=True)
        return {n: g.detach() for n, g in zip(point, grads) if g is not None}

    steps = []
    with distiller.weighting.learning(), distiller.lookahead(teacher_outputs):
        for index in range(kd_steps + task_steps):
            point = {n: t.detach().requires_grad_() for n, t in theta.items()}
            rng = capture_random_state()
            if index < kd_steps:
                loss, terms, weights, frozen = distill_terms(point)
            else:
                loss, terms, weights, frozen = task_loss(point), None, None, None
            grads = {n: g.requires_grad_() for n, g in gradient(loss, point).items()}
            state = _state_leaves(mirror)
            new = mirror.step(point, grads)
            steps.append(_Step(point, state, grads, new, _state_tensors(mirror), rng,
                               terms, weights, frozen))
            theta = {n: t.detach() for n, t in new.items()}
        final = {n: t.detach().requires_grad_() for n, t in theta.items()}
        outer = task_loss(final)
        after_outer = capture_random_state()
        if not kd_steps:  # no distillation step: the nets do not reach the outer loss
            return outer.detach(), outer.new_zeros(())
        adjoint, state_adjoint = gradient(outer, final), {}
        surrogate = outer.new_zeros(())
        while steps:
            index, step = len(steps) - 1, steps.pop()  # dropped once passed back
            adjoint, state_adjoint, u = step.backward(adjoint, state_adjoint)
            hessian = curvature and index > 0  # nothing depends on theta_0
            if step.terms is None and not hessian:
                continue  # a task-loss step without its curvature adds nothing
            norm = torch.sqrt(sum((d.double()**2).sum() for d in u.values())) if u else 0
            if not u or float(norm) == 0:
                continue
            scale = epsilon / float(norm)
            sides = []
            for sign in (1.0, -1.0):
                restore_random_state(step.rng)  # the random numbers of the step's forward
                shifted = {n: (t + sign * scale * u[n] if n in u else t).detach()
                           for n, t in step.point.items()}
                with torch.set_grad_enabled(hessian):
                    if hessian:
                        shifted = {n: t.requires_grad_() for n, t in shifted.items()}
                    if step.terms is not None:
                        loss, terms, _, _ = distill_terms(shifted, step.frozen)
                    else:
                        loss, terms = task_loss(shifted), None
                    sides.append((gradient(loss, shifted) if hessian else {}, terms))
            (grad_plus, plus), (grad_minus, minus) = sides
            if hessian:
                for n in set(grad_plus) | set(grad_minus):
                    product = (grad_plus.get(n, 0) - grad_minus.get(n, 0)) / (2 * scale)
                    adjoint[n] = adjoint[n] + product if n in adjoint else product
            if step.terms is None:
                continue
            # Feature teachers' terms have a fixed weight: no part in the hypergradient
            # (zeros, which keep the task teachers' share of the feature term).
            derivative = replace(
                step.terms,
                logit_kd=(plus.logit_kd - minus.logit_kd) / (2 * scale),
                feature_kd=(None if step.terms.feature_kd is None else
                            (plus.feature_kd - minus.feature_kd) / (2 * scale)),
                feature_teacher_kd=(None if step.terms.feature_teacher_kd is None else
                                    torch.zeros_like(step.terms.feature_teacher_kd)))
            surrogate = surrogate + sum(
                v.mean() for v in distiller.per_sample_distill_losses(derivative,
                                                                      step.weights).values())
        restore_random_state(after_outer)
    return outer.detach(), surrogate


def _detached_terms(batch: KDBatch) -> KDBatch:
    """What the differences need of a step's terms: not its graph or feature maps."""
    return KDBatch(student_logits=batch.student_logits.detach(),
                   teacher_logits=batch.teacher_logits, logit_kd=batch.logit_kd.detach(),
                   feature_kd=None if batch.feature_kd is None else batch.feature_kd.detach(),
                   feature_teacher_kd=(None if batch.feature_teacher_kd is None
                                       else batch.feature_teacher_kd.detach()))


def _state_leaves(mirror) -> Dict[Tuple[str, str], torch.Tensor]:
    """Make the mirror's state tensors leaves of a fresh graph (in place); returns them
    by ``(parameter, key)``."""
    leaves = {}
    for name, state in mirror.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.is_floating_point():
                state[key] = leaves[name, key] = value.detach().requires_grad_()
    return leaves


def _state_tensors(mirror) -> Dict[Tuple[str, str], torch.Tensor]:
    return {(name, key): value for name, state in mirror.state.items()
            for key, value in state.items() if torch.is_tensor(value)}


class _Step(NamedTuple):
    """One first-order look-ahead step, kept for the reverse pass: its inputs as
    leaves (``point``: ``theta_s``, ``state``: ``m_s``, ``grads``: ``g_s``), the
    update's outputs with their graph (``new``, ``new_state``), the random state of
    its forward, and, for a distillation step, its detached terms, its weights
    (with their graph to the nets) and those weights as constants."""
    point: Dict[str, torch.Tensor]
    state: Dict[Tuple[str, str], torch.Tensor]
    grads: Dict[str, torch.Tensor]
    new: Dict[str, torch.Tensor]
    new_state: Dict[Tuple[str, str], torch.Tensor]
    rng: dict
    terms: Optional[KDBatch]
    weights: Optional[TeacherWeights]
    frozen: Optional[TeacherWeights]

    def backward(self, adjoint: Dict[str, torch.Tensor],
                 state_adjoint: Dict[Tuple[str, str], torch.Tensor]) -> tuple:
        """Back-propagate the adjoints of ``theta_s+1`` and ``m_s+1`` through the update
        rule: ``(adjoint of theta_s, adjoint of m_s, u_s)``, each without its zero
        entries."""
        outputs = [(self.new[n], a) for n, a in adjoint.items()
                   if n in self.new and self.new[n].requires_grad]
        outputs += [(self.new_state[k], a) for k, a in state_adjoint.items()
                    if k in self.new_state and self.new_state[k].requires_grad]
        groups = (list(self.point.items()), list(self.state.items()), list(self.grads.items()))
        inputs = [t for group in groups for _, t in group]
        if outputs and inputs:
            found = torch.autograd.grad([o for o, _ in outputs], inputs,
                                        grad_outputs=[a for _, a in outputs],
                                        allow_unused=True)
        else:
            found = [None] * len(inputs)
        results, position = [], 0
        for group in groups:
            results.append({key: g for (key, _), g in zip(group, found[position:])
                            if g is not None})
            position += len(group)
        return tuple(results)
