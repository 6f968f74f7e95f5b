"""The demo: multi-teacher distillation on generated data, end to end.

Generates Shapes-10, trains three teachers and the student alone, distils the
student with every weighting method, evaluates each with tools/test.py, and prints
a table (also saved with a bar plot under work_dirs/shapes10/). Runs that already
finished are reused; ``--force`` redoes them.

    python tools/demo.py [--work-root work_dirs/shapes10] [--force] [--verbose]
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import List, NamedTuple, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG = osp.join(ROOT, 'configs', 'classification')


class Run(NamedTuple):
    name: str          # shown in the table
    role: str          # 'teacher', 'student' or 'distilled'
    config: str
    export_as: Optional[str] = None  # teachers: file name under <work-root>/teachers


RUNS: List[Run] = [
    Run('ResNet18-w24', 'teacher', f'{CFG}/teachers/resnet18_w24_shapes10.py', 'resnet18_w24.pth'),
    Run('ResNet18-w16', 'teacher', f'{CFG}/teachers/resnet18_w16_shapes10.py', 'resnet18_w16.pth'),
    Run('ResNet50-w8', 'teacher', f'{CFG}/teachers/resnet50_w8_shapes10.py', 'resnet50_w8.pth'),
    Run('student alone', 'student', f'{CFG}/students/resnet18_w8_shapes10.py'),
    Run('KD: AVER', 'distilled', f'{CFG}/distill/kd_aver_r18w8_shapes10.py'),
    Run('KD: fixed', 'distilled', f'{CFG}/distill/kd_fixed_r18w8_shapes10.py'),
    Run('KD: EBKD (entropy)', 'distilled', f'{CFG}/distill/kd_entropy_r18w8_shapes10.py'),
    Run('KD: CA-MKD (confidence)', 'distilled', f'{CFG}/distill/kd_confidence_r18w8_shapes10.py'),
    Run('KD: MMKD (meta-learned)', 'distilled', f'{CFG}/distill/kd_mmkd_r18w8_shapes10.py'),
    Run('KD: MTKD-RL (deterministic)', 'distilled', f'{CFG}/distill/kd_mtkd_rl_r18w8_shapes10.py'),
    Run('KD: MTKD-RL (stochastic)', 'distilled',
        f'{CFG}/distill/kd_mtkd_rl_stochastic_r18w8_shapes10.py'),
]


def slug(name: str) -> str:
    return re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')


def run_command(cmd: List[str], log_path: str, verbose: bool) -> None:
    """Run a tool, keep its full output in ``log_path`` and echo its progress lines."""
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            if verbose or 'Epoch(' in line:
                print('    ' + line.rstrip()[-150:], flush=True)
        if proc.wait() != 0:
            raise SystemExit(f'[demo] command failed ({" ".join(cmd)}); see {log_path}')


def train_and_test(run: Run, work_root: str, teacher_dir: str, force: bool,
                   verbose: bool) -> dict:
    """Train one config, export it if it is a teacher, evaluate it; cached."""
    work_dir = osp.join(work_root, slug(run.name))
    result_path = osp.join(work_dir, 'demo_result.json')
    if osp.isfile(result_path) and not force:
        with open(result_path) as f:
            result = json.load(f)
        print(f'[demo] {run.name}: done before, reusing (top-1 {result["top1"]:.2f}%)')
        return result
    os.makedirs(work_dir, exist_ok=True)
    py = sys.executable
    teacher_files = [r.export_as for r in RUNS if r.role == 'teacher']
    options = ['--cfg-options'] + [
        f'model.teachers.{i}.checkpoint={teacher_dir}/{name}'
        for i, name in enumerate(teacher_files)] if run.role == 'distilled' else []
    print(f'[demo] {run.name}: training ({osp.relpath(run.config, ROOT)})', flush=True)
    start = time.time()
    run_command([py, 'tools/train.py', run.config, '--work-dir', work_dir, *options],
                osp.join(work_dir, 'train.out'), verbose)
    train_seconds = time.time() - start
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    if run.export_as:
        run_command([py, 'tools/export_student.py', checkpoint,
                     osp.join(teacher_dir, run.export_as)],
                    osp.join(work_dir, 'export.out'), verbose)
    metrics_path = osp.join(work_dir, 'test_metrics.json')
    run_command([py, 'tools/test.py', run.config, checkpoint, '--work-dir', work_dir,
                 '--metrics-json', metrics_path, *options],
                osp.join(work_dir, 'test.out'), verbose)
    with open(metrics_path) as f:
        top1 = json.load(f)['accuracy/top1']
    result = dict(name=run.name, role=run.role, top1=top1, train_seconds=train_seconds)
    with open(result_path, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'[demo] {run.name}: top-1 {top1:.2f}% (trained in {train_seconds:.0f} s)')
    return result


def format_table(results: List[dict]) -> str:
    baseline = next((r['top1'] for r in results if r['role'] == 'student'), None)
    lines = ['| model | role | top-1 (%) | vs student alone | train time (s) |',
             '|---|---|---|---|---|']
    for r in results:
        delta = '' if baseline is None or r['role'] != 'distilled' else f'{r["top1"] - baseline:+.2f}'
        lines.append(f'| {r["name"]} | {r["role"]} | {r["top1"]:.2f} | {delta} | '
                     f'{r["train_seconds"]:.0f} |')
    return '\n'.join(lines)


def save_plot(results: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    colours = dict(teacher='#8c8c8c', student='#d62728', distilled='#1f77b4')
    fig, ax = plt.subplots(figsize=(9, 4))
    names = [r['name'] for r in results]
    bars = ax.bar(names, [r['top1'] for r in results],
                  color=[colours[r['role']] for r in results])
    ax.bar_label(bars, fmt='%.1f', fontsize=8)
    lows = [r['top1'] for r in results]
    ax.set_ylim(max(0, min(lows) - 10), min(100, max(lows) + 5))
    ax.set_ylabel('top-1 accuracy on Shapes-10 val (%)')
    ax.set_title('Multi-teacher distillation of a ResNet-18 (8 channels)')
    plt.setp(ax.get_xticklabels(), rotation=25, ha='right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-root', default='work_dirs/shapes10')
    parser.add_argument('--data-root', default='data/shapes10')
    parser.add_argument('--force', action='store_true', help='redo finished runs')
    parser.add_argument('--verbose', action='store_true', help='show full training logs')
    args = parser.parse_args()
    os.chdir(ROOT)
    teacher_dir = osp.join(args.work_root, 'teachers')
    os.makedirs(teacher_dir, exist_ok=True)

    from mmkd_ext.datasets import generate_shapes10
    from mmkd_ext.engine.plotting import plot_teacher_weights
    meta = generate_shapes10(args.data_root)
    print(f'[demo] Shapes-10 data in {args.data_root}: '
          f'{"already there" if meta["skipped"] else "generated"}')

    start = time.time()
    results = [train_and_test(run, args.work_root, teacher_dir, args.force, args.verbose)
               for run in RUNS]
    weight_plots = [
        plot_teacher_weights(osp.join(args.work_root, slug(run.name)),
                             title=f'{run.name}: mean teacher weights')
        for run in RUNS if run.role == 'distilled']
    table = format_table(results)
    plot_path = osp.join(args.work_root, 'demo_results.png')
    save_plot(results, plot_path)
    with open(osp.join(args.work_root, 'demo_results.md'), 'w') as f:
        f.write(table + '\n')
    print(f'\n[demo] finished in {time.time() - start:.0f} s\n')
    print(table)
    print(f'\n[demo] table: {args.work_root}/demo_results.md   plot: {plot_path}')
    print('[demo] teacher weights over training: ' + ', '.join(weight_plots))


if __name__ == '__main__':
    main()
