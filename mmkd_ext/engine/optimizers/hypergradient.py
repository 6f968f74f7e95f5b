"""MMKD's hypergradient: the exact one and two cheaper approximations.

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
"""
from dataclasses import replace
from typing import Optional, Tuple

import torch
import torch.nn as nn

from mmkd_ext.structures import KDBatch, TeacherWeights
from mmkd_ext.utils.random_state import capture_random_state, restore_random_state
from .lookahead import call, lookahead_task_loss, mirror_optimizer, student_task_loss
from .second_order import SecondOrderReport

#: The hypergradient options of :class:`~mmkd_ext.engine.hooks.MetaWeightHook`.
HYPERGRADIENT_MODES = ('exact', 'first_order_task', 'finite_difference')

#: What each mode approximates, for the logs and the docs.
APPROXIMATIONS = {
    'exact': 'nothing (second derivatives through every unrolled step)',
    'first_order_task': "the task-loss look-ahead steps' curvature (taken first-order)",
    'finite_difference': ("the losses' curvature along the unrolled steps (the outer "
                          "gradient is carried back through the optimizer's update only) "
                          'and the mixed second derivative, a central difference of the '
                          'per-sample distillation terms'),
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
        epsilon: ``'finite_difference'``: the norm of the parameter perturbation.
    """
    check_mode(mode)
    if mode == 'finite_difference':
        return finite_difference_objective(distiller, optimizer, inputs, data_samples,
                                           kd_steps, task_steps, teacher_outputs, epsilon)
    outer = lookahead_task_loss(distiller, optimizer, inputs, data_samples, kd_steps,
                                task_steps, report=report,
                                task_steps_second_order=mode == 'exact',
                                teacher_outputs=teacher_outputs)
    return outer, outer


def finite_difference_objective(distiller: nn.Module, optimizer: torch.optim.Optimizer,
                                inputs: torch.Tensor, data_samples: list, kd_steps: int,
                                task_steps: int, teacher_outputs: Optional[tuple] = None,
                                epsilon: float = 1e-2) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``'finite_difference'`` hypergradient, with no second derivative.

    1. ``kd_steps`` distillation steps then ``task_steps`` task-loss steps from the
       live student, each first-order; each step's gradient ``g_s`` is a leaf of a
       graph through the optimizer mirror's update rule alone, so the final
       parameters ``theta_T`` are a function of the ``g_s``.
    2. ``v = grad_theta`` of the task loss at ``theta_T``; ``u_s = (d theta_T /
       d g_s)^T v`` by one backward through the update rule (momentum buffers and
       Adam's moments included).
    3. The hypergradient is ``sum_s u_s^T d/dphi grad_theta L_kd(theta_s, phi)``.
       ``L_kd`` is ``mean_i sum_k w_ik(phi) * term_ik(theta)`` (the nets' inputs are
       detached), so this is ``d/dphi mean_i sum_k w_ik * D_ik`` with ``D_ik`` the
       derivative of ``term_ik`` along ``u_s``: the central difference
       ``(term_ik(theta_s + e u_s) - term_ik(theta_s - e u_s)) / 2e``, with
       ``e = epsilon / |u_s|`` and, on both sides, the random numbers (dropout, drop
       path) of the step's own forward. The generators are left as the outer
       forward left them, as in the other modes.

    Returns:
        ``(outer, surrogate)``: the outer loss and ``sum_s mean_i sum_k (alpha
        wL_ik DL_ik + beta wF_ik DF_ik)``, whose gradient is the hypergradient.
    """
    named = {n: p for n, p in distiller.named_parameters()
             if p.requires_grad and not n.startswith('weighting.')}
    buffers = {n: b.clone() for n, b in distiller.named_buffers()}
    mirror = mirror_optimizer(optimizer, named)
    chain = {n: p.detach() for n, p in named.items()}  # theta_s as a function of the g_s
    leaves, records = [], []

    def task_loss(point):
        return student_task_loss(distiller, {**point, **buffers}, inputs, data_samples)

    def step(point, loss, as_leaves):
        nonlocal chain
        names = list(point)
        grads = torch.autograd.grad(loss, [point[n] for n in names], allow_unused=True)
        grads = {n: (g.detach().requires_grad_() if as_leaves else g.detach())
                 for n, g in zip(names, grads) if g is not None}
        chain = mirror.step(chain, grads)
        return grads

    with distiller.weighting.learning(), distiller.lookahead(teacher_outputs):
        for _ in range(kd_steps):
            point = {n: t.detach().requires_grad_() for n, t in chain.items()}
            rng = capture_random_state()
            batch, weights = call(distiller, {**point, **buffers}, inputs, data_samples,
                                  mode='distill_terms')
            frozen = TeacherWeights(logit=weights.logit.detach(),
                                    feature=weights.feature.detach())
            loss = sum(v.mean() for v in
                       distiller.per_sample_distill_losses(batch, frozen).values())
            grads = step(point, loss, as_leaves=True)
            leaves.append(grads)
            # Only what the difference needs: not the step's graph or feature maps.
            terms = KDBatch(student_logits=batch.student_logits.detach(),
                            teacher_logits=batch.teacher_logits, logit_kd=batch.logit_kd.detach(),
                            feature_kd=(None if batch.feature_kd is None
                                        else batch.feature_kd.detach()),
                            feature_teacher_kd=(None if batch.feature_teacher_kd is None
                                                else batch.feature_teacher_kd.detach()))
            records.append(({n: t.detach() for n, t in point.items()}, terms, weights, rng))
        for _ in range(task_steps):
            point = {n: t.detach().requires_grad_() for n, t in chain.items()}
            step(point, task_loss(point), as_leaves=False)
        final = {n: t.detach().requires_grad_() for n, t in chain.items()}
        outer = task_loss(final)
        after_outer = capture_random_state()
        if not leaves:  # no distillation step: the nets do not reach the outer loss
            return outer.detach(), outer.new_zeros(())
        names = [n for n in final if chain[n].requires_grad]
        v = torch.autograd.grad(outer, [final[n] for n in names], allow_unused=True)
        pairs = [(chain[n], g) for n, g in zip(names, v) if g is not None]
        targets = [g for grads in leaves for g in grads.values()]
        if pairs and targets:
            u_all = torch.autograd.grad([c for c, _ in pairs], targets,
                                        grad_outputs=[g for _, g in pairs], allow_unused=True)
        else:
            u_all = [None] * len(targets)

        surrogate = outer.new_zeros(())
        position = 0
        for grads, (point, batch, weights, rng) in zip(leaves, records):
            u = {n: d for n, d in zip(grads, u_all[position:position + len(grads)])
                 if d is not None}
            position += len(grads)
            norm = torch.sqrt(sum((d.double()**2).sum() for d in u.values())) if u else 0
            if not u or float(norm) == 0:
                continue
            scale = epsilon / float(norm)
            terms = []
            for sign in (1.0, -1.0):
                restore_random_state(rng)  # the random numbers of the step's own forward
                shifted = {n: (t + sign * scale * u[n] if n in u else t)
                           for n, t in point.items()}
                with torch.no_grad():
                    shifted_batch, _ = call(distiller, {**shifted, **buffers}, inputs,
                                            data_samples, mode='distill_terms')
                terms.append(shifted_batch)
            plus, minus = terms
            # Feature teachers' terms have a fixed weight: no part in the hypergradient
            # (zeros, which keep the task teachers' share of the feature term).
            derivative = replace(
                batch,
                logit_kd=(plus.logit_kd - minus.logit_kd) / (2 * scale),
                feature_kd=(None if batch.feature_kd is None else
                            (plus.feature_kd - minus.feature_kd) / (2 * scale)),
                feature_teacher_kd=(None if batch.feature_teacher_kd is None else
                                    torch.zeros_like(batch.feature_teacher_kd)))
            surrogate = surrogate + sum(
                v.mean() for v in distiller.per_sample_distill_losses(derivative,
                                                                      weights).values())
        restore_random_state(after_outer)
    return outer.detach(), surrogate
