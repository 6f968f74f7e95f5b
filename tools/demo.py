"""The demo: multi-teacher distillation on generated data, end to end.

For a task (classification by default, detection or segmentation), generates its
dataset in the real format, trains the teachers and the student alone, distils the
student with every weighting method, evaluates each with tools/test.py, and prints a
table (also saved with a bar plot under the task's work root). Runs that already finished are
reused; ``--force`` redoes them.

    python tools/demo.py [--task classification|detection|segmentation] [--force] [--verbose]
                         [--methods aver mmkd ...] [--jobs J]

Runs go ``--jobs`` at a time (by default two on CPU, one core each, and one on
CUDA): the teachers and the student alone first, then the distillations.
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository's benchmarks/ package

from benchmarks import experiments  # noqa: E402
from benchmarks.experiments import slug  # noqa: E402
from benchmarks.matrix import default_jobs, map_in_job_slots  # noqa: E402
from benchmarks.tasks import Run, Task, make_tasks  # noqa: E402

CPU_JOBS = 2  # runs at a time on CPU without --jobs, one core each


def train_and_test(run: Run, task: Task, teacher_dir: str, force: bool,
                   verbose: bool, env: Optional[Dict[str, str]] = None) -> dict:
    """Train one config, export it if it is a teacher, evaluate it; cached. ``env``:
    the environment of its processes (its share of the CPU threads)."""
    work_dir = osp.join(task.work_root, slug(run.name))
    options = dict(task.data_options(task.data_root))
    if run.role == 'distilled':
        options.update(task.checkpoint_options(task.teacher_files(teacher_dir)))
    options = [f'{key}={value}' for key, value in options.items()]
    if force or not osp.isfile(osp.join(work_dir, 'demo_result.json')):
        print(f'[demo] {run.name}: training ({osp.relpath(run.config, ROOT)})', flush=True)
    try:
        result = experiments.train_and_test(
            run.config, work_dir, task.metric_key, task.metric_scale, ROOT, options,
            export_to=run.export_as and osp.join(teacher_dir, run.export_as),
            result_name='demo_result.json', force=force, env=env,
            echo=(lambda line: print(f'    [{run.name}] ' + line, flush=True)) if verbose
            else experiments.progress_echo(f'    [{run.name}] '))
    except experiments.ExperimentFailed as error:
        raise SystemExit(f'[demo] {run.name} failed: {error}')
    result.setdefault('score', result.get('top1'))  # results of earlier versions
    if result['cached']:
        print(f'[demo] {run.name}: done before, reusing ({task.metric_name} '
              f'{result["score"]:.2f})')
    else:
        print(f'[demo] {run.name}: {task.metric_name} {result["score"]:.2f} '
              f'(trained in {result["train_seconds"]:.0f} s)')
    return dict(result, name=run.name, role=run.role)


def run_all(runs: List[Run], task: Task, teacher_dir: str, force: bool, verbose: bool,
            jobs: int) -> List[dict]:
    """:func:`train_and_test` of ``runs``, ``jobs`` at a time; results in their order."""
    return map_in_job_slots(
        lambda run, env: train_and_test(run, task, teacher_dir, force, verbose, env),
        runs, jobs)


def format_table(results: List[dict], metric_name: str) -> str:
    baseline = next((r['score'] for r in results if r['role'] == 'student'), None)
    lines = [f'| model | role | {metric_name} | vs student alone | train time (s) |',
             '|---|---|---|---|---|']
    for r in results:
        delta = ('' if baseline is None or r['role'] != 'distilled'
                 else f'{r["score"] - baseline:+.2f}')
        lines.append(f'| {r["name"]} | {r["role"]} | {r["score"]:.2f} | {delta} | '
                     f'{r["train_seconds"]:.0f} |')
    return '\n'.join(lines)


def main():
    tasks = make_tasks(ROOT)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', choices=list(tasks), default='classification')
    parser.add_argument('--work-root', help="default: the task's (work_dirs/<dataset>)")
    parser.add_argument('--data-root', help="default: the task's (data/<dataset>)")
    parser.add_argument('--force', action='store_true', help='redo finished runs')
    parser.add_argument('--verbose', action='store_true', help='show full training logs')
    parser.add_argument('--jobs', type=int, metavar='J',
                        help=f'runs at a time (default: {CPU_JOBS} on CPU, one core each; '
                        '1 on CUDA)')
    parser.add_argument('--methods', nargs='+', metavar='METHOD',
                        help='distil with these weightings only (teachers and the student '
                        'alone always run); default: all')
    args = parser.parse_args()
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be at least 1 (got {args.jobs})')
    experiments.absolute_paths(args, ('work_root', 'data_root'))  # before the chdir
    os.chdir(ROOT)
    task = tasks[args.task]
    known = [run.method for run in task.runs if run.method]
    unknown = sorted(set(args.methods or ()) - set(known))
    if unknown:
        parser.error(f'unknown methods {unknown}; choose from {known}')
    runs = [run for run in task.runs if not run.method or args.methods is None
            or run.method in args.methods]
    task = task._replace(work_root=args.work_root or task.work_root,
                         data_root=args.data_root or task.data_root, runs=runs)
    teacher_dir = osp.join(task.work_root, 'teachers')
    os.makedirs(teacher_dir, exist_ok=True)

    from benchmarks.plotting import plot_score_bars, plot_teacher_weights
    meta = task.generate(task.data_root)
    print(f'[demo] {task.dataset} data in {task.data_root}: '
          f'{"already there" if meta["skipped"] else "generated"}')

    jobs = args.jobs if args.jobs is not None else default_jobs(CPU_JOBS)
    start = time.time()
    # The teachers and the student alone first: the distillations need the teachers.
    first = [run for run in task.runs if run.role != 'distilled']
    results = run_all(first, task, teacher_dir, args.force, args.verbose, jobs)
    results += run_all([run for run in task.runs if run.role == 'distilled'], task,
                       teacher_dir, args.force, args.verbose, jobs)
    weight_plots = [
        plot_teacher_weights(osp.join(task.work_root, slug(run.name)),
                             title=f'{run.name}: mean teacher weights')
        for run in task.runs if run.role == 'distilled']
    table = format_table(results, task.metric_name)
    plot_path = osp.join(task.work_root, 'demo_results.png')
    plot_score_bars([r['name'] for r in results], [r['score'] for r in results],
                    [r['role'] for r in results], plot_path,
                    f'{task.metric_name} on {task.dataset} val', task.title)
    with open(osp.join(task.work_root, 'demo_results.md'), 'w') as f:
        f.write(table + '\n')
    print(f'\n[demo] finished in {time.time() - start:.0f} s\n')
    print(table)
    print(f'\n[demo] table: {task.work_root}/demo_results.md   plot: {plot_path}')
    print('[demo] teacher weights over training: ' + ', '.join(weight_plots))


if __name__ == '__main__':
    main()
