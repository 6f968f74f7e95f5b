"""Per-iteration time and peak memory of distillation methods against the physical
bound, measured in one process on the same batch stream.

For a task's configs the child process measures, on the same training data:

(a) the student's own training iterations alone, through the runner with the
    student's config (as ``tools/train.py`` trains it);
(b) each teacher's inference forward alone (its input conversion included);
(c) a full K-teacher KD step for every requested weighting, through MMEngine's
    runner with the method's hooks (MMKD's meta steps, MTKD-RL's agent updates).

The bound is (a) + sum(b): no KD step can be cheaper than running its models once.
Figures are means of the timed iterations (a method's periodic updates count), with
medians alongside. All phases are measured ``rounds`` times, each round in another
order, and pooled, so that drifts of the machine's speed reach every phase alike.

Beside the bound, each teacher's forward is timed under the distiller's speed options
(channels-last inputs and weights, bf16 autocast), with how far they move the
teacher's outputs from float32.
"""
import copy
import json
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, List, Optional

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from mmkd_ext.models.distillers import TeacherPool

from benchmarks.methods import METHODS, VARIANTS, method_hook

#: Update-interval keys of the methods' hooks, set by ``METHOD:INTERVAL``.
INTERVAL_KEYS = ('interval', 'agent_interval')


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory of a phase: the CUDA allocator's peak, or on Linux CPUs the
    process's resident-set high-water mark (``VmHWM``, reset through
    ``/proc/self/clear_refs``). On CPU a phase's peak includes what earlier phases
    left resident (models, allocator caches)."""

    def reset(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        elif osp.exists('/proc/self/clear_refs'):
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')

    @staticmethod
    def current_mib() -> float:
        if torch.cuda.is_available():
            return torch.cuda.memory_allocated() / 2**20
        return _proc_status_kib('VmRSS') / 1024

    def peak_mib(self) -> float:
        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
        return _proc_status_kib('VmHWM') / 1024


def _proc_status_kib(field: str) -> float:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return float(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kiB on Linux


class CpuSteal:
    """Share of the machine's CPU time taken by other guests of the host (``steal``
    in Linux's ``/proc/stat``) between :meth:`start` and :meth:`share`; None where
    it is not reported. A large share means the timings are not the machine's own."""

    def start(self) -> 'CpuSteal':
        self.begin = self._read()
        return self

    @staticmethod
    def _read() -> Optional[List[int]]:
        try:
            with open('/proc/stat') as f:
                return [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None

    def share(self) -> Optional[float]:
        end = self._read()
        if self.begin is None or end is None or len(end) < 8:
            return None
        delta = [b - a for a, b in zip(self.begin, end)]
        return delta[7] / max(sum(delta[:8]), 1)


def timed(step: Callable[[object], None], batches: Iterable, warmup: int) -> dict:
    """Run ``step`` on each batch; seconds of the batches after ``warmup`` and the
    phase's peak memory."""
    steal = CpuSteal().start()
    memory = PeakMemory()
    memory.reset()
    before = memory.current_mib()
    seconds = []
    for batch in batches:
        _sync()
        start = time.perf_counter()
        step(batch)
        _sync()
        seconds.append(time.perf_counter() - start)
    return _figures(seconds[warmup:], memory.peak_mib(), before, steal.share())


def _figures(seconds: List[float], peak: float, before: float,
             steal: Optional[float]) -> dict:
    return dict(iters=len(seconds), mean=statistics.fmean(seconds),
                median=statistics.median(seconds), peak_mib=peak,
                extra_mib=max(peak - before, 0.0), steal=steal, seconds=list(seconds))


def pool_rounds(rounds: List[List[dict]]) -> List[dict]:
    """One row per phase from rounds that measured the same phases in the same order:
    the timed iterations of all rounds together (their mean and median), the highest
    peak memory, the mean CPU-steal share."""
    pooled = []
    for same in zip(*rounds):
        names = {(row.get('phase'), row.get('teacher'), row.get('variant')) for row in same}
        assert len(names) == 1, f'rounds measured different phases: {sorted(names)}'
        seconds = [t for row in same for t in row['seconds']]
        steals = [row['steal'] for row in same if row.get('steal') is not None]
        row = dict(same[0], **_figures(seconds, max(r['peak_mib'] for r in same), 0.0, None))
        row.update(extra_mib=max(r['extra_mib'] for r in same), rounds=len(same),
                   round_means=[r['mean'] for r in same],
                   steal=statistics.fmean(steals) if steals else None)
        for key in ('top1_agreement', 'kd_drift'):  # teacher variants
            if row.get(key) is not None:
                row[key] = statistics.fmean(r[key] for r in same)
        pooled.append(row)
    return pooled


class IterTimer(Hook):
    """Records the wall time of every training iteration (hooks included)."""
    priority = 'VERY_LOW'

    def __init__(self):
        self.seconds: List[float] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        _sync()
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        _sync()
        self.seconds.append(time.perf_counter() - self._start)


def configure(config: str, interval: Optional[int], iters: int, warmup: int,
              batch_size: int, options: dict) -> Config:
    """The distillation ``config`` set up for ``warmup + iters`` timed iterations of
    full batches; ``interval`` overrides the update interval of the method's hook.
    MMKD's re-estimation of the student's BN statistics after the last iteration (once
    per run) is switched off: it would count in the last timed iteration."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    # Full batches only (a batch sampler, e.g. mmdet's by aspect ratio, drops its own).
    drop_last = ('train_dataloader.batch_sampler.drop_last'
                 if cfg.train_dataloader.get('batch_sampler') else 'train_dataloader.drop_last')
    cfg.merge_from_dict({
        'train_dataloader.batch_size': batch_size,
        drop_last: True,
        'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop',
                          max_iters=warmup + iters, val_interval=10**9),
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10**9, by_epoch=False,
                                         save_last=False),
        'default_hooks.logger.interval': 10**9,
        'param_scheduler': [],
        'randomness': dict(seed=0),
    })
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # timing only
    weighting = cfg.model.get('weighting', {})
    if 'batch_size' in weighting:  # MMKD's feature net is sized by the batch
        weighting.batch_size = batch_size
    if 'warmup_epochs' in weighting:  # time the agent acting, not its warm-up
        weighting.warmup_epochs = 0
    for hook in cfg.get('custom_hooks', []):
        if 'quiz_batch_size' in hook:
            hook['quiz_batch_size'] = batch_size
            hook['buffer_size'] = max(hook.get('buffer_size', 0), batch_size)
            # Once per run, after the last iteration: not a cost of an iteration.
            hook['precise_bn_batches'] = 0
        for key in INTERVAL_KEYS:
            if key in hook and interval is not None:
                hook[key] = interval
    cfg.work_dir = tempfile.mkdtemp(prefix='mmkd_overhead_')  # removed after the run
    cfg.experiment_name = osp.basename(cfg.work_dir)
    if cfg.get('visualizer'):  # MMEngine reuses a visualizer by name across runners
        cfg.visualizer.name = cfg.experiment_name
    return cfg


def hook_interval(cfg: Config) -> Optional[int]:
    return next((hook[key] for hook in cfg.get('custom_hooks', [])
                 for key in INTERVAL_KEYS if key in hook), None)


def measure_bound(student_cfg: Config, kd_cfg: Config, warmup: int) -> tuple:
    """Phase (a): training iterations of ``student_cfg`` (the student alone) through
    the runner; phase (b): each teacher of ``kd_cfg`` on the batches of its training
    data loader (the same stream), run as its distiller runs it (:class:`TeacherForward`
    with the distiller's teacher options).

    Returns:
        ``(rows, (distiller, batches))``: a row per phase, and the distiller of
        ``kd_cfg`` with the prepared batches (b) was timed on.
    """
    from mmengine.runner import Runner
    rows = [measure_training(student_cfg, 'student step alone', warmup)]
    runner = Runner.from_cfg(copy.deepcopy(kd_cfg))
    model = runner.model
    loader = runner.build_dataloader(kd_cfg.train_dataloader, seed=runner.seed)
    count = kd_cfg.train_cfg.max_iters
    batches, stream = [], iter(loader)
    while len(batches) < count:
        try:
            batches.append(next(stream))
        except StopIteration:
            stream = iter(loader)
    prepared = [model.data_preprocessor(copy.copy(data), True) for data in batches]
    for index, name in enumerate(model.teacher_names):
        forward = TeacherForward(model.teacher_pool, index)
        rows.append(dict(phase=f'teacher {name} forward', **timed(forward, prepared, warmup)))
    return rows, (model, prepared)


class TeacherForward:
    """Teacher ``index``'s forward on a prepared batch as the distiller runs it
    (:meth:`~mmkd_ext.models.distillers.TeacherPool.run_teacher`: input conversion,
    inference mode, feature recording, the copy of the outputs out of inference mode);
    ``options`` (``channels_last``, ``autocast``) override the pool's own. Returns the
    head output (float32)."""

    def __init__(self, pool: TeacherPool, index: int, **options):
        self.pool, self.index = pool, index
        self.options = dict(pool.options, **options)

    @property
    def channels_last(self) -> bool:
        return self.options['channels_last']

    def __call__(self, data: dict):
        return self.pool.run_teacher(self.index, data['inputs'], data['data_samples'],
                                     **self.options)[0]


#: The teachers' speed options of :class:`MultiTeacherDistiller`, as timed here.
TEACHER_VARIANTS = {
    'channels_last': dict(channels_last=True),
    'bf16 autocast': dict(autocast=torch.bfloat16),
}


def measure_teacher_variants(model, prepared: List[dict], warmup: int) -> List[dict]:
    """Each teacher's forward under each of :data:`TEACHER_VARIANTS` on the batches
    the bound was timed on: its time, and how far its outputs move from the plain
    float32 forward's: the share of samples whose top per-sample logit
    (:meth:`~BaseTaskView.sample_logits`) stays the same, and the mean per-sample KD
    term (the distiller's logit KD loss) of the variant's output towards float32's.
    The teachers are left in the memory format the distiller gave them. Feature
    teachers (no head output) are not measured here."""
    view, kd_loss, pool = model.task_view, model.logit_kd_loss, model.teacher_pool
    plain = dict(channels_last=False, autocast=None)
    rows = []
    try:
        for index in pool.task_indices:
            name = pool.names[index]
            pool.to_memory_format(False)
            reference = [TeacherForward(pool, index, **plain)(data) for data in prepared]
            for variant, options in TEACHER_VARIANTS.items():
                forward, outputs = TeacherForward(pool, index, **dict(plain, **options)), []
                pool.to_memory_format(forward.channels_last)
                figures = timed(lambda data: outputs.append(forward(data)), prepared, warmup)
                agree, drift = [], []
                for data, out, ref in zip(prepared, outputs, reference):
                    agree.append((view.sample_logits(out).argmax(1)
                                  == view.sample_logits(ref).argmax(1)).float())
                    if kd_loss is not None:
                        drift.append(view.logit_kd(kd_loss, out, ref, data['data_samples']))
                rows.append(dict(teacher=name, variant=variant, **figures,
                                 top1_agreement=torch.cat(agree).mean().item(),
                                 kd_drift=torch.cat(drift).mean().item() if drift else None))
    finally:
        pool.to_memory_format(pool.channels_last)
    return rows


def measure_training(cfg: Config, phase: str, warmup: int) -> dict:
    """Training iterations of ``cfg`` through the runner (hooks included, data loading
    not): phase (a) for the student's config, (c) for a distillation config."""
    from mmengine.runner import Runner
    memory = PeakMemory()
    runner = Runner.from_cfg(cfg)
    timer = IterTimer()
    runner.register_hook(timer)
    memory.reset()
    before = memory.current_mib()
    steal = CpuSteal().start()
    try:
        runner.train()
    finally:
        shutil.rmtree(cfg.work_dir, ignore_errors=True)
    return dict(phase=phase, interval=hook_interval(cfg),
                **_figures(timer.seconds[warmup:], memory.peak_mib(), before, steal.share()))


def measure_bound_and_options(student_config: str, aver_config: str, iters: int,
                              warmup: int, batch_size: int, options: dict) -> tuple:
    """The bound's phases (:func:`measure_bound`, the student's config without the
    distiller's ``model.`` options) and the teachers' speed options
    (:func:`measure_teacher_variants`) on the same batches: ``(rows, variant rows)``."""
    student_options = {k: v for k, v in options.items() if not k.startswith('model.')}
    bound_cfg = configure(aver_config, None, iters, warmup, batch_size, options)
    try:
        rows, (model, prepared) = measure_bound(
            configure(student_config, None, iters, warmup, batch_size, student_options),
            bound_cfg, warmup)
        return rows, measure_teacher_variants(model, prepared, warmup)
    finally:
        shutil.rmtree(bound_cfg.work_dir, ignore_errors=True)


def measure_method(configs: Dict[str, str], entry: str, iters: int, warmup: int,
                   batch_size: int, options: dict) -> dict:
    """Phase (c) for one ``METHOD[:N]`` entry (a method or a variant of one,
    :data:`~benchmarks.methods.VARIANTS`). With an interval ``N`` it warms up for at
    least ``N`` iterations (its first update, with its one-time costs, is not timed)
    and times a whole number of intervals (``iters`` rounded up to a multiple of N)."""
    method, _, interval = entry.partition(':')
    interval = int(interval) if interval else None
    if interval:
        warmup, iters = max(warmup, interval), -(-iters // interval) * interval
    variant = VARIANTS.get(method)
    cfg = configure(configs[variant.method if variant else method], interval, iters, warmup,
                    batch_size, options)
    if variant:
        method_hook(cfg.custom_hooks, variant.method).update(variant.hook_options)
    return measure_training(cfg, method, warmup)


def measure_overhead(student_config: str, configs: Dict[str, str], entries: List[str],
                     iters: int, warmup: int, batch_size: int, options: dict,
                     rounds: int = 1) -> dict:
    """All phases in this process: the bound from the student's config and the AVER
    config's teachers, the teachers' speed options, and a KD step per
    ``METHOD[:INTERVAL]`` entry (:func:`measure_method`). This is done ``rounds``
    times, each round starting one phase later (the bound counts as one), and pooled
    per phase, so that drifts of the machine's speed reach every phase alike. Every
    run is configured anew, with its own work directory and name."""
    import mmkd_ext  # noqa: F401
    phases = ['the bound'] + list(entries)
    phase_rounds, variant_rounds = [], []
    for index in range(rounds):
        shift = index % len(phases)
        measured = {}
        for position in list(range(shift, len(phases))) + list(range(shift)):
            print(f'[benchmark] round {index + 1}/{rounds}: {phases[position]}', flush=True)
            if position == 0:
                measured[0], variants = measure_bound_and_options(
                    student_config, configs['aver'], iters, warmup, batch_size, options)
                variant_rounds.append(variants)
            else:
                measured[position] = [measure_method(configs, phases[position], iters,
                                                     warmup, batch_size, options)]
        phase_rounds.append([row for position in sorted(measured) for row in measured[position]])
    return dict(rows=pool_rounds(phase_rounds), teacher_variants=pool_rounds(variant_rounds),
                device='cuda' if torch.cuda.is_available() else 'cpu', batch_size=batch_size,
                rounds=rounds)


def run_in_subprocess(args: List[str]) -> dict:
    """Run ``python ARGS`` (echoing its ``[benchmark]`` lines); the dict it printed
    on its ``BENCH`` line."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'))
    result = None
    for line in proc.stdout:
        if line.startswith('BENCH '):
            result = json.loads(line[len('BENCH '):])
        elif line.startswith('[benchmark]'):
            print(line.rstrip(), flush=True)
    stderr = proc.stderr.read()
    if proc.wait() != 0 or result is None:
        raise RuntimeError(f'benchmark child failed:\n{stderr[-3000:]}')
    return result


def format_overhead_table(result: dict) -> str:
    """Markdown table: each phase's time and memory against the bound and AVER, by
    mean (periodic updates count) and by median (robust to stalls)."""
    rows = result['rows']
    parts = [r for r in rows if r['phase'] not in METHODS and r['phase'] not in VARIANTS]
    bound = sum(r['mean'] for r in parts)
    bound_median = sum(r['median'] for r in parts)
    memory_bound = parts[0]['peak_mib'] + sum(r['extra_mib'] for r in parts[1:])
    aver = next((r for r in rows if r['phase'] == 'aver'), None)
    memory = 'GPU' if result['device'] == 'cuda' else 'RSS'
    lines = [f'| phase | update interval | s/iter mean | s/iter median | vs bound '
             f'(mean / median) | vs AVER (mean / median) | peak {memory} MiB '
             '| memory vs bound | CPU steal | mean of each round, min-max |',
             '|---|---|---|---|---|---|---|---|---|---|']

    def noise(r):
        steal = '' if r.get('steal') is None else f'{100 * r["steal"]:.0f}%'
        means = r.get('round_means') or [r['mean']]
        return f'{steal} | {min(means):.4f}-{max(means):.4f}'
    for r in parts:
        lines.append(f'| {r["phase"]} | | {r["mean"]:.4f} | {r["median"]:.4f} | | | '
                     f'{r["peak_mib"]:.0f} | | {noise(r)} |')
    lines.append(f'| **bound** (a) + sum(b) | | {bound:.4f} | {bound_median:.4f} | 1.00x | | '
                 f'{memory_bound:.0f} | 1.00x | | |')
    for r in rows[len(parts):]:
        vs_aver = (f'{r["mean"] / aver["mean"]:.2f}x / {r["median"] / aver["median"]:.2f}x'
                   if aver else '')
        lines.append(f'| {r["phase"]} | {r.get("interval") or "-"} | {r["mean"]:.4f} | '
                     f'{r["median"]:.4f} | {r["mean"] / bound:.2f}x / '
                     f'{r["median"] / bound_median:.2f}x | {vs_aver} | {r["peak_mib"]:.0f} | '
                     f'{r["peak_mib"] / memory_bound:.2f}x | {noise(r)} |')
    return '\n'.join(lines)


def format_teacher_variant_table(result: dict) -> str:
    """Markdown table of the teachers' speed options against their float32 forward."""
    fp32 = {r['phase']: r for r in result['rows']}
    lines = ['| teacher: option | s/iter mean | vs float32 forward | top-1 agreement '
             '| KD drift from float32 |', '|---|---|---|---|---|']
    for r in result.get('teacher_variants', []):
        base = fp32[f'teacher {r["teacher"]} forward']['mean']
        drift = '' if r['kd_drift'] is None else f'{r["kd_drift"]:.2e}'
        lines.append(f'| {r["teacher"]}: {r["variant"]} | {r["mean"]:.4f} | '
                     f'{r["mean"] / base:.2f}x | {100 * r["top1_agreement"]:.1f}% | {drift} |')
    return '\n'.join(lines)
