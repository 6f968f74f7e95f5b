"""``--hypergradients``: MMKD's hypergradient options against the exact one, on the
training states of a real run.

The task's MMKD configuration trains through MMEngine's runner (its exact
hypergradient steps the weight networks, as in a plain run); at every meta step,
on the same quiz batch, state and random numbers, each option of
:data:`~benchmarks.methods.VARIANTS` is computed as well. For each option the child
reports the cosine similarity and the norm ratio of its hypergradient to the exact
one, and its time (the teachers' forward on the quiz batch is timed once, apart,
and shared by all options).
"""
import copy
import shutil
import statistics
import time
from typing import Dict, List, Optional

import torch
from mmengine.config import Config

from mmkd_ext.engine.hooks import MetaWeightHook
from mmkd_ext.utils.random_state import capture_random_state, restore_random_state
from mmkd_ext.engine.optimizers.hypergradient import meta_objective
from mmkd_ext.registry import HOOKS

from benchmarks.benchmark import _sync, configure
from benchmarks.methods import VARIANT_TABLE, method_hook

#: The reference of the comparison.
EXACT = 'exact'
#: The hook options a hypergradient depends on (variants setting others are not compared).
HYPERGRADIENT_KEYS = {'hypergradient', 'inner_kd_steps', 'inner_ce_steps',
                      'finite_difference_epsilon'}


@HOOKS.register_module(force=True)
class HypergradientComparisonHook(MetaWeightHook):
    """:class:`MetaWeightHook` that, at each meta step, also computes the
    hypergradient of every entry of ``settings`` (label: hook options) and records
    how it compares with the hook's own (exact) one, which alone steps the nets."""

    def __init__(self, settings: Dict[str, dict], **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.records: List[dict] = []

    def _one(self, model, optimizer, inputs, data_samples, known, options, nets):
        mode = options.get('hypergradient', self.hypergradient_mode)
        kd = options.get('inner_kd_steps', self.inner_kd_steps)
        ce = options.get('inner_ce_steps', self.inner_ce_steps)
        epsilon = options.get('finite_difference_epsilon', self.finite_difference_epsilon)
        _sync()
        start = time.perf_counter()
        with model.weighting.learning():
            outer, surrogate = meta_objective(mode, model, optimizer, inputs, data_samples,
                                              kd, ce, report=self.second_order,
                                              teacher_outputs=known, epsilon=epsilon)
            grads = (torch.autograd.grad(surrogate, nets, allow_unused=True)
                     if surrogate.requires_grad else [None] * len(nets))
        _sync()
        seconds = time.perf_counter() - start
        flat = torch.cat([(torch.zeros_like(p) if g is None else g).flatten()
                          for p, g in zip(nets, grads)])
        return flat.double(), grads, seconds, outer.item()

    def hypergradient(self, model, optimizer, inputs, data_samples, teacher_outputs=None):
        with model.weighting.learning():  # the nets take gradients inside
            nets = [p for p in model.weighting.parameters() if p.requires_grad]
        with model.lookahead(teacher_outputs):
            _sync()
            start = time.perf_counter()
            known = (inputs, model.teacher_pool.run(inputs, data_samples))
            _sync()
            teacher_seconds = None if teacher_outputs else time.perf_counter() - start
            state = capture_random_state()
            measured = {EXACT: self._one(model, optimizer, inputs, data_samples, known, {},
                                         nets)}
            after_exact = capture_random_state()  # where a plain run would go on from
            for label, options in self.settings.items():
                restore_random_state(state)  # the same dropout draws for every option
                measured[label] = self._one(model, optimizer, inputs, data_samples, known,
                                            options, nets)
            restore_random_state(after_exact)
        reference, exact_grads, _, outer = measured[EXACT]
        for param, grad in zip(nets, exact_grads):
            if grad is not None:
                param.grad = grad if param.grad is None else param.grad + grad
        for label, (flat, _, seconds, _) in measured.items():
            cosine = torch.nn.functional.cosine_similarity(flat, reference, dim=0)
            self.records.append(dict(
                label=label, cosine=float(cosine), seconds=seconds,
                norm_ratio=float(flat.norm() / reference.norm().clamp_min(1e-30)),
                teacher_seconds=teacher_seconds))
        return outer


def compare(config: str, options: dict, iters: int, warmup: int, interval: int,
            batch_size: int, load_from: Optional[str] = None,
            settings: Optional[Dict[str, dict]] = None) -> dict:
    """Train ``config`` (an MMKD config) for ``warmup + iters`` iterations with the
    comparison hook; the per-option figures over the meta steps after ``warmup``.
    ``settings`` (label: hook options) defaults to the variants of
    :data:`~benchmarks.methods.VARIANT_TABLE`."""
    from mmengine.runner import Runner
    cfg = configure(config, interval, iters, warmup, batch_size, options)
    hook = method_hook(cfg.custom_hooks, 'mmkd')
    hook['type'] = 'mmkd_ext.HypergradientComparisonHook'
    hook['settings'] = settings or {v.key: v.hook_options for v in VARIANT_TABLE
                                    if set(v.hook_options) & HYPERGRADIENT_KEYS}
    hook['precise_bn_batches'] = 0
    if load_from:
        cfg.load_from = load_from
    try:
        runner = Runner.from_cfg(copy.deepcopy(cfg))
        runner.train()
        comparison = next(h for h in runner.hooks
                          if isinstance(h, HypergradientComparisonHook))
    finally:
        shutil.rmtree(cfg.work_dir, ignore_errors=True)
    steps = len([r for r in comparison.records if r['label'] == EXACT])
    skip = warmup // interval  # meta steps inside the warm-up
    rows = []
    for label in [EXACT] + list(comparison.settings):
        records = [r for r in comparison.records if r['label'] == label][skip:]
        if not records:
            continue
        cosines = [r['cosine'] for r in records]
        rows.append(dict(label=label, steps=len(records),
                         cosine_mean=statistics.fmean(cosines), cosine_min=min(cosines),
                         norm_ratio=statistics.median(r['norm_ratio'] for r in records),
                         seconds=statistics.fmean(r['seconds'] for r in records),
                         teacher_runs=[r['teacher_seconds'] for r in records
                                       if r['teacher_seconds'] is not None]))
    return dict(rows=rows, meta_steps=steps, batch_size=batch_size, interval=interval,
                settings=comparison.settings,
                load_from=load_from,
                device='cuda' if torch.cuda.is_available() else 'cpu')


def format_table(result: dict) -> str:
    """Markdown: each option's cosine to the exact hypergradient and its time."""
    from benchmarks.methods import VARIANTS
    exact = next(r for r in result['rows'] if r['label'] == EXACT)
    lines = ['| hypergradient | hook options | cosine to exact, mean (min) | norm / exact, '
             'median | s per meta step | vs exact |', '|---|---|---|---|---|---|']
    for r in result['rows']:
        options = (VARIANTS[r['label']].hook_options if r['label'] in VARIANTS
                   else result.get('settings', {}).get(r['label'], {}))
        shown = ', '.join(f'{k}={v!r}' for k, v in options.items()) or '(the config\'s)'
        lines.append(f'| {r["label"]} | {shown} | {r["cosine_mean"]:.3f} ({r["cosine_min"]:.3f})'
                     f' | {r["norm_ratio"]:.2f} | {r["seconds"]:.3f} | '
                     f'{r["seconds"] / exact["seconds"]:.2f}x |')
    lines.append('')
    runs = exact['teacher_runs']
    teachers = (f'the teachers ran on {len(runs)} quiz batches ({statistics.fmean(runs):.3f} s '
                'each, shared by all options, not in the times above); the others came with '
                'their outputs from the training steps' if runs else
                "every quiz batch came with its teachers' outputs from the training steps")
    lines.append(f'Over {exact["steps"]} meta steps (batch {result["batch_size"]}, every '
                 f'{result["interval"]} iterations, on {result["device"]}); {teachers}.')
    return '\n'.join(lines)
