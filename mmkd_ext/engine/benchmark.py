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
from typing import Dict, List

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

#: Method name -> config overrides, applied to the AVER config of the demo.
METHODS: Dict[str, dict] = {
    'aver': {},
    'mmkd': dict(weighting=dict(type='MetaWeightNet'), hook=dict(type='mmkd_ext.MetaWeightHook')),
}


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


def measure(config: str, method: str, interval: int, iters: int, warmup: int,
            batch_size: int, options: dict) -> dict:
    """Train ``warmup + iters`` iterations in this process; return the figures."""
    from mmengine.runner import Runner
    import mmkd_ext  # noqa: F401
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.merge_from_dict({
        'train_dataloader.batch_size': batch_size,
        'train_dataloader.drop_last': True,
        'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop',
                          max_iters=warmup + iters, val_interval=10**9),
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10**9, by_epoch=False),
        'default_hooks.logger.interval': 10**9,
        'param_scheduler': [],
    })
    spec = METHODS[method]
    if 'weighting' in spec:
        cfg.model.weighting = dict(spec['weighting'], batch_size=batch_size)
    if 'hook' in spec:
        cfg.custom_hooks = [dict(spec['hook'], interval=interval,
                                 quiz_batch_size=batch_size)]
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
    lines = ['| method | meta interval | s/iter (mean) | s/iter (median) | time vs AVER '
             f'| peak {"GPU" if base["device"] == "cuda" else "RSS"} MiB | memory vs AVER |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        interval = '-' if r['method'] == 'aver' else r['interval']
        lines.append(f'| {r["method"]} | {interval} | {r["sec_per_iter"]:.3f} | '
                     f'{r["median"]:.3f} | {r["sec_per_iter"] / base["sec_per_iter"]:.2f}x | '
                     f'{r["peak_mib"]:.0f} | {r["peak_mib"] / base["peak_mib"]:.2f}x |')
    return '\n'.join(lines)
