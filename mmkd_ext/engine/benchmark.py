"""Per-iteration time and peak memory of distillation methods, measured alike.

Each method runs in a fresh process (peak memory is per process) on the same
config, data and teachers; the figures of one invocation are compared as ratios.
"""
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
import uuid
from typing import List, Optional

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

#: The weighting methods, by short name (each task has a distillation config per method).
METHODS = ('aver', 'fixed', 'entropy', 'confidence', 'mmkd', 'mtkd_rl', 'mtkd_rl_stochastic')
#: Update-interval keys of the methods' hooks, set by ``METHOD:INTERVAL``.
INTERVAL_KEYS = ('interval', 'agent_interval')


class IterTimer(Hook):
    """Records the wall time of every training iteration (hooks included)."""
    priority = 'VERY_LOW'

    def __init__(self):
        self.seconds: List[float] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._start)


def measure(config: str, method: str, interval: Optional[int], iters: int, warmup: int,
            batch_size: int, options: dict) -> dict:
    """Train ``warmup + iters`` iterations of the distillation ``config`` (of
    ``method``) in this process; return the figures. ``interval`` overrides the
    update interval of the method's hook."""
    from mmengine.runner import Runner
    import mmkd_ext  # noqa: F401
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
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10**9, by_epoch=False),
        'default_hooks.logger.interval': 10**9,
        'param_scheduler': [],
    })
    if 'batch_size' in cfg.model.weighting:  # MMKD's feature net is sized by the batch
        cfg.model.weighting.batch_size = batch_size
    if 'warmup_epochs' in cfg.model.weighting:  # time the agent acting, not its warm-up
        cfg.model.weighting.warmup_epochs = 0
    for hook in cfg.get('custom_hooks', []):
        if 'quiz_batch_size' in hook:
            hook['quiz_batch_size'] = batch_size
        for key in INTERVAL_KEYS:
            if key in hook and interval is not None:
                hook[key] = interval
    interval = next((hook[key] for hook in cfg.get('custom_hooks', [])
                     for key in INTERVAL_KEYS if key in hook), None)
    cfg.work_dir = osp.join('work_dirs', 'benchmark', f'{method}_{uuid.uuid4().hex[:6]}')
    cfg.experiment_name = osp.basename(cfg.work_dir)
    runner = Runner.from_cfg(cfg)
    timer = IterTimer()
    runner.register_hook(timer)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    runner.train()
    timed = timer.seconds[warmup:]
    peak = (torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(method=method, interval=interval, iters=len(timed),
                sec_per_iter=sum(timed) / len(timed), median=statistics.median(timed),
                peak_mib=peak, device='cuda' if torch.cuda.is_available() else 'cpu')


def run_in_subprocess(args: List[str]) -> dict:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED='1'))
    lines = [line for line in out.stdout.splitlines() if line.startswith('BENCH ')]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f'benchmark child failed:\n{out.stderr[-3000:]}')
    return json.loads(lines[-1][len('BENCH '):])


def format_overhead_table(rows: List[dict]) -> str:
    base = next(r for r in rows if r['method'] == 'aver')
    lines = ['| method | update interval | s/iter (mean) | s/iter (median) | time vs AVER '
             f'| peak {"GPU" if base["device"] == "cuda" else "RSS"} MiB | memory vs AVER |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        interval = r['interval'] or '-'  # '-': the method has no update hook
        lines.append(f'| {r["method"]} | {interval} | {r["sec_per_iter"]:.3f} | '
                     f'{r["median"]:.3f} | {r["sec_per_iter"] / base["sec_per_iter"]:.2f}x | '
                     f'{r["peak_mib"]:.0f} | {r["peak_mib"] / base["peak_mib"]:.2f}x |')
    return '\n'.join(lines)
