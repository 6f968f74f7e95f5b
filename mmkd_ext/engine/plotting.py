"""Plots of what a distillation run logged."""
import glob
import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Tuple


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
    for key in sorted(k for k in series if k.endswith('.w_logit')):
        iters, values = zip(*series[key])
        ax.plot(iters, values, label=key[:-len('.w_logit')])
    ax.set_xlabel('iteration')
    ax.set_ylabel('mean logit weight in the batch')
    ax.set_title(title or f'Teacher weights: {osp.basename(osp.normpath(work_dir))}')
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
