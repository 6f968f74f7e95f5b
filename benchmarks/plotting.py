"""Plots of what a distillation run logged."""
import glob
import json
import os.path as osp
from collections import defaultdict
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from benchmarks.paired import Interval

#: Bar colours of the result charts, by the role of a row.
ROLE_COLOURS = dict(teacher='#8c8c8c', student='#d62728', single='#ff7f0e',
                    distilled='#1f77b4')


def find_scalars(work_dir: str) -> str:
    """The newest ``vis_data/scalars.json`` MMEngine wrote under ``work_dir``."""
    found = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise FileNotFoundError(f'No */vis_data/scalars.json under {work_dir}: is it the '
                                'work directory of a tools/train.py run?')
    return found[-1]


def read_teacher_weights(scalars_path: str) -> Dict[str, List[Tuple[int, float]]]:
    """``{'<teacher>.w_logit': [(iter, mean weight), ...], ...}`` from a scalars file."""
    series = defaultdict(list)
    with open(scalars_path) as f:
        for line in f:
            record = json.loads(line)
            for key, value in record.items():
                if key.endswith(('.w_logit', '.w_feat')):
                    series[key].append((record['iter'], value))
    return dict(series)


def plot_teacher_weights(work_dir: str, out_path: str = None, title: str = None) -> str:
    """Save a line plot of each teacher's mean logit weight over training.

    Returns:
        The path of the PNG (``<work_dir>/teacher_weights.png`` by default).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    series = read_teacher_weights(find_scalars(work_dir))
    if not series:
        raise ValueError(f'{work_dir} logged no per-teacher weights (<name>.w_logit).')
    out_path = out_path or osp.join(work_dir, 'teacher_weights.png')
    fig, ax = plt.subplots(figsize=(7, 3.5))
    _draw_weights(ax, series)
    ax.set_title(title or f'Teacher weights: {osp.basename(osp.normpath(work_dir))}')
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path


def plot_weight_grid(work_dirs: Dict[str, str], out_path: str, title: str) -> str:
    """One panel of per-teacher mean logit weights per run (``{panel title: work
    dir}``); runs without logged weights are left out. Returns ``out_path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = {}
    for name, work_dir in work_dirs.items():
        try:
            series = read_teacher_weights(find_scalars(work_dir))
        except FileNotFoundError:
            continue
        if series:
            panels[name] = series
    if not panels:
        raise ValueError(f'None of {sorted(work_dirs.values())} logged teacher weights.')
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3 * rows), squeeze=False,
                             sharey=True)
    for ax, (name, series) in zip(axes.flat, panels.items()):
        _draw_weights(ax, series)
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def _draw_weights(ax, series: Dict[str, List[Tuple[int, float]]]) -> None:
    for key in sorted(k for k in series if k.endswith('.w_logit')):
        iters, values = zip(*series[key])
        ax.plot(iters, values, label=key[:-len('.w_logit')])
    ax.set_xlabel('iteration')
    ax.set_ylabel('mean logit weight in the batch')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_score_bars(labels: Sequence[str], scores: Sequence[float], roles: Sequence[str],
                    path: str, ylabel: str, title: str,
                    spreads: Optional[Sequence[Optional[float]]] = None) -> str:
    """Bar chart of result rows (a metric in percent), coloured by role
    (:data:`ROLE_COLOURS`), each bar labelled with its value; ``spreads`` adds error
    bars (None: no bar for that row). Returns ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 4))
    yerr = None if spreads is None else [float('nan') if s is None else s for s in spreads]
    bars = ax.bar(labels, scores, yerr=yerr, capsize=3,
                  color=[ROLE_COLOURS[role] for role in roles])
    ax.bar_label(bars, fmt='%.1f', fontsize=8, padding=4 if spreads is not None else 0)
    shown = list(scores) or [0]
    ax.set_ylim(max(0, min(shown) - 10), min(100, max(shown) + 8))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    plt.setp(ax.get_xticklabels(), rotation=25, ha='right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_paired_differences(panels: Dict[str, Dict[str, 'Interval']], path: str,
                            xlabel: str, title: str) -> str:
    """One panel per reference (``{panel title: {row: Interval}}``): each row's mean
    difference as a dot with its interval as a horizontal bar, 0 marked; rows whose
    interval excludes 0 are drawn solid, the others hollow. Returns ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = {name: rows for name, rows in panels.items() if rows}
    if not panels:
        raise ValueError('No paired differences to plot (one seed, or no reference row).')
    height = max(len(rows) for rows in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.45 * height + 1.6),
                             squeeze=False)
    for ax, (name, rows) in zip(axes.flat, panels.items()):
        for y, (row, interval) in enumerate(reversed(list(rows.items()))):
            low = interval.mean if interval.low is None else interval.low
            high = interval.mean if interval.high is None else interval.high
            ax.plot([low, high], [y, y], color='#1f77b4', lw=2)
            ax.plot(interval.mean, y, 'o', color='#1f77b4',
                    mfc='#1f77b4' if interval.excludes_zero else 'white')
        ax.axvline(0, color='#d62728', lw=1, ls='--')
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(list(reversed(list(rows))), fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3, axis='x')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
