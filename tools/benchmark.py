"""Benchmarks of mmkd_ext.

The method matrix (default): for each task, trains its teachers, the student alone,
plain KD from the best single teacher and the student distilled with every weighting
method, over several seeds, each through tools/train.py and tools/test.py; writes a
markdown and a CSV table (mean, std and 95% interval over seeds, paired
differences to the student alone and to AVER with their intervals, the BN gap,
s/iter, peak memory, the teacher diagnostics), a bar chart and a paired-difference
plot per task and the teacher-weight curves.

    python tools/benchmark.py --quick       # ~27 min on 2 CPU cores: classification, 3 seeds
    python tools/benchmark.py               # every task, 3 seeds, full schedules (a GPU's work)
        [--tasks classification detection segmentation] [--seeds N] [--jobs J]
        [--methods aver mmkd ...] [--work-root DIR] [--force] [--verbose]

A task's pools with an added teacher (``benchmarks/tasks.py``: in detection a GFL
teacher of another head family, ``aver_with_gfl``, or the classification task's
ResNet-18 as a feature teacher, ``aver_with_classifier``) run when their key is among
``--methods``, paired with AVER on the task's own pool:

    python tools/benchmark.py --quick --tasks detection --methods aver aver_with_gfl aver_with_classifier

Finished runs are reused on a re-run and stopped ones resume from their checkpoint;
a failed run is reported in the table and the others go on (the exit status is 1).

``--overhead``: seconds per iteration and peak memory of each weighting method against
the physical bound and against AVER, on a task's demo configuration, all measured in
one process on the same batch stream: (a) the student's training step alone, (b) each
teacher's inference forward alone, (c) a full KD step per method. Bound = (a) + sum(b).

    python tools/benchmark.py --overhead [--task classification|detection|segmentation]
        [--iters 15] [--rounds 3] [--warmup 5] [--batch-size N] [--methods aver mmkd:5 ...]

``--hypergradients``: MMKD's hypergradient options (``benchmarks/methods.py``'s
variants: first-order task steps, finite differences, one-step look-ahead) against
the exact hypergradient at every meta step of an MMKD training run on a task: cosine
similarity, norm ratio and seconds per meta step, on the same quiz batch and state.

    python tools/benchmark.py --hypergradients [--task ...] [--iters 40] [--warmup 5]
        [--interval 5] [--batch-size N] [--teacher-dir DIR] [--load-from CKPT]

``--families``: the family matrix (``benchmarks/families.py``): each zoo family (RTMDet,
Faster R-CNN, SegFormer, DeiT...) shrunk for a CPU, as student and two teachers,
distilled a few iterations with every weighting; prints runs / refused / FAILED per
case and writes work_dirs/benchmark/families/families.md.

    python tools/benchmark.py --families [RTMDet DeiT ...] [--methods aver mmkd ...]

``METHOD:N`` sets the update interval of the method's hook (MMKD's meta interval,
MTKD-RL's agent interval); without it the method's config is used as is. Teachers come
from the demo's work_dirs/<dataset>/teachers when present; otherwise randomly
initialised teachers of the same architectures are used (their weights do not change
the cost).
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import sys
from typing import Dict

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository's benchmarks/ package


def prepare_teachers(task, teacher_dir: str) -> Dict[str, str]:
    """Teacher checkpoint per file name for timing: the demo's, or random ones written
    once per architecture (the file is named by a digest of the model config, so a
    changed config gets new weights)."""
    names = [run.export_as for run in task.teachers]
    if all(osp.isfile(osp.join(teacher_dir, name)) for name in names):
        return {name: osp.join(teacher_dir, name) for name in names}
    from mmengine.config import Config

    from mmkd_ext.utils.model_builder import save_initialised_checkpoint
    folder = osp.join(ROOT, 'work_dirs', 'benchmark', 'random_teachers')
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for run in task.teachers:
        model_cfg = repr(Config.fromfile(run.config).model.to_dict())
        digest = hashlib.sha1(model_cfg.encode()).hexdigest()
        path = osp.join(folder, f'{osp.splitext(run.export_as)[0]}_{digest[:10]}.pth')
        if not osp.isfile(path):
            save_initialised_checkpoint(run.config, path)
        paths[run.export_as] = path
    return paths


def prepare_data(task, data_root=None) -> str:
    """A user's ``data_root`` is used as it is; the task's own is generated if needed."""
    if data_root:
        if not osp.isdir(data_root):
            raise SystemExit(f'[benchmark] --data-root {data_root} does not exist.')
        return data_root
    meta = task.generate(task.data_root)
    print(f'[benchmark] {task.dataset} data in {task.data_root}: '
          f'{"already there" if meta["skipped"] else "generated"}', flush=True)
    return task.data_root


def timing_setup(args, task_name: str, task) -> tuple:
    """What ``--overhead`` and ``--hypergradients`` run on: the cfg-options pointing the
    task's configs at its data and teachers (:func:`prepare_teachers`), and the batch
    size (``--batch-size``, else 64 for classification and 8 for the dense tasks)."""
    data_root = prepare_data(task, args.data_root)
    checkpoints = prepare_teachers(task, args.teacher_dir
                                   or osp.join(task.work_root, 'teachers'))
    options = task.data_options(data_root)
    options.update(task.checkpoint_options([checkpoints[run.export_as]
                                            for run in task.teachers]))
    return options, args.batch_size or (64 if task_name == 'classification' else 8)


def overhead(args, task_name: str, task) -> None:
    """``--overhead``: the bound and each method's KD step, in one child process."""
    from benchmarks.benchmark import (format_overhead_table, format_teacher_variant_table,
                                      run_in_subprocess)
    from benchmarks.methods import METHODS
    options, batch_size = timing_setup(args, task_name, task)
    entries = args.methods or ['aver', 'mmkd:5', 'mtkd_rl', 'mtkd_rl_stochastic']
    spec = dict(student_config=task.student_config,
                configs={m: task.distill_config(m) for m in METHODS}, entries=entries,
                iters=args.iters, warmup=args.warmup, batch_size=batch_size, options=options,
                rounds=args.rounds or 3)
    print(f'[benchmark] {task_name}, batch {batch_size}: the bound '
          f'(student step, each teacher forward), the teachers\' options, then '
          f'{" ".join(entries)}, in one process, {spec["rounds"]} rounds in turn', flush=True)
    result = run_in_subprocess([__file__, '--overhead-child', json.dumps(spec)])
    print()
    print(format_overhead_table(result))
    print('\nThe teachers\' speed options (model.teacher_channels_last, '
          'model.teacher_autocast):\n')
    print(format_teacher_variant_table(result))


def hypergradients(args, task_name: str, task) -> None:
    """``--hypergradients``: MMKD's hypergradient options against the exact one at the
    meta steps of a training run, in one child process."""
    from benchmarks.benchmark import run_in_subprocess
    from benchmarks.hypergradients import format_table
    options, batch_size = timing_setup(args, task_name, task)
    spec = dict(config=task.distill_config('mmkd'), options=options, iters=args.iters,
                warmup=args.warmup, interval=args.interval or 5, batch_size=batch_size,
                load_from=args.load_from)
    print(f'[benchmark] {task_name}, batch {batch_size}: MMKD trains '
          f'{args.warmup} + {args.iters} iterations'
          + (f' from {args.load_from}' if args.load_from else '')
          + '; at each meta step every hypergradient option is computed on the same '
          'quiz batch', flush=True)
    result = run_in_subprocess([__file__, '--hypergradients-child', json.dumps(spec)])
    print()
    print(format_table(result))


def method_matrix(args, tasks) -> int:
    """The default mode; returns the exit status (1 if a run failed)."""
    from benchmarks import matrix
    from benchmarks.methods import METHODS
    from benchmarks.plotting import plot_weight_grid
    preset_name = 'quick' if args.quick else 'full'
    preset = matrix.PRESETS[preset_name]
    names = args.tasks or list(preset.tasks)
    seeds = list(range(args.seeds or preset.seeds))  # --seeds is checked >= 1
    jobs = args.jobs or matrix.default_jobs(preset.cpu_jobs)
    methods = args.methods or list(METHODS)
    work_root = args.work_root or osp.join('work_dirs', 'benchmark', preset_name)
    os.makedirs(work_root, exist_ok=True)
    print(f'[benchmark] {preset_name} preset: {", ".join(names)}; seeds {seeds}; '
          f'{len(methods)} methods; {jobs} at a time; results in {work_root}',
          flush=True)
    pools = [pool for name in names for pool in tasks[name].pools if pool.key in methods]
    # The tasks whose data train a pool's added teacher (e.g. a classifier for detection).
    teacher_tasks = [t for t in dict.fromkeys(p.teacher_task for p in pools) if t not in names]
    data_roots = {name: args.data_root or tasks[name].data_root for name in names}
    data_roots.update({name: tasks[name].data_root for name in teacher_tasks})
    extra = dict(option.split('=', 1) for option in args.cfg_options or ())
    for name in names:
        prepare_data(tasks[name], args.data_root)
    for name in teacher_tasks:
        prepare_data(tasks[name])
    settings = {name: matrix.Settings(work_root, data_roots[name], preset.quick, extra,
                                      preset.validate)
                for name in names + teacher_tasks}
    for name in names:  # paths and options must pass through the tools' command lines
        try:
            matrix.option_strings({**tasks[name].data_options(data_roots[name]), **extra,
                                   'work root': osp.abspath(work_root)})
        except ValueError as error:
            raise SystemExit(f'[benchmark] {error}')
    run = dict(tasks=tasks, root=ROOT, jobs=jobs, force=args.force, verbose=args.verbose)
    planned_teachers = [e for name in names
                        for e in matrix.plan_teachers(name, tasks[name], settings[name])]
    known = {e.work_dir for e in planned_teachers}
    pool_teachers = [e for e in matrix.plan_pool_teachers(pools, tasks, settings)
                     if e.work_dir not in known]
    trained = matrix.run_experiments(planned_teachers + pool_teachers, label='teachers', **run)
    # The pools' added teachers are no teachers of the task's own pool (its best teacher,
    # its diagnostics); one of a task outside the table is not shown in it.
    teachers, added = trained[:len(planned_teachers)], trained[len(planned_teachers):]
    failed_pools = [p.key for p in pools
                    if not osp.isfile(matrix.pool_teacher_file(p, work_root))]
    if failed_pools:
        print(f'[benchmark] {failed_pools}: the added teacher failed, so these pools are '
              'not trained', flush=True)
    methods = [m for m in methods if m not in failed_pools]
    planned = []
    for name in names:
        task_teachers = [o for o in teachers if o.experiment.task == name]
        best = matrix.best_teacher_index(task_teachers)
        if best is None:
            print(f'[benchmark] {name}: a teacher failed, so its students are not trained',
                  flush=True)
            continue
        planned += matrix.plan_students(name, tasks[name], settings[name], seeds, methods, best)
    diagnostics = {}
    for name in names:
        if matrix.best_teacher_index([o for o in teachers if o.experiment.task == name]) \
                is not None:
            diagnostics[name] = matrix.teacher_diagnostics(name, tasks[name], settings[name],
                                                           ROOT, args.force)
    shown = teachers + [o for o in added if o.experiment.task in names]
    outcomes = shown + matrix.run_experiments(planned, label='runs', **run)

    rows = matrix.summarise(outcomes, tasks)
    table = matrix.format_markdown(rows, diagnostics)
    with open(osp.join(work_root, 'benchmark.md'), 'w') as f:
        f.write(table)
    matrix.write_csv(rows, osp.join(work_root, 'benchmark.csv'))
    figures = []
    for name in names:
        task_rows = [r for r in rows if r['task'] == name]
        figures.append(matrix.plot_task_bars(task_rows, tasks[name],
                                             osp.join(work_root, f'{name}.png')))
        if any(r['vs_alone'] or r['vs_aver'] for r in task_rows):
            figures.append(matrix.plot_task_differences(
                task_rows, tasks[name], osp.join(work_root, f'{name}_paired.png')))
        distilled = {o.experiment.row: o.experiment.work_dir for o in outcomes
                     if o.experiment.task == name and o.experiment.role == 'distilled'
                     and o.experiment.seed == seeds[0] and o.result is not None}
        if distilled:
            figures.append(plot_weight_grid(
                distilled, osp.join(work_root, f'{name}_teacher_weights.png'),
                f'{tasks[name].dataset}: mean teacher weights over training, seed {seeds[0]}'))
    print()
    print(table)
    print(f'[benchmark] tables: {work_root}/benchmark.md, {work_root}/benchmark.csv')
    print(f'[benchmark] plots: {", ".join(figures)}')
    return 1 if any(o.result is None for o in outcomes + added) else 0


#: Options of one mode only: (dest, flag).
MATRIX_ONLY = [('quick', '--quick'), ('tasks', '--tasks'), ('seeds', '--seeds'),
               ('work_root', '--work-root'), ('cfg_options', '--cfg-options'),
               ('force', '--force'), ('verbose', '--verbose')]
OVERHEAD_ONLY = [('task', '--task'), ('batch_size', '--batch-size'),
                 ('teacher_dir', '--teacher-dir'), ('rounds', '--rounds')]


def family_matrix(args, tasks) -> int:
    """Run the family matrix (benchmarks/families.py) and print its table; 1 when a
    case ends otherwise than the table says (the README's family table)."""
    from benchmarks.families import FAMILIES, MATRIX_METHODS, expected_outcome, run_matrix
    methods = [m for m in (args.methods or MATRIX_METHODS) if m in MATRIX_METHODS]
    work_root = args.work_root or osp.join(ROOT, 'work_dirs', 'benchmark', 'families')
    rows = run_matrix(tasks, work_root, args.families or None, methods)
    lines = ['| family | method | outcome | seconds | detail |', '|---|---|---|---|---|']
    lines += [f"| {r['family']} | {r['method']} | {r['outcome']} | {r['seconds']} | "
              f"{r['detail'][:120]} |" for r in rows]
    table = '\n'.join(lines)
    print(table)
    with open(osp.join(work_root, 'families.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(work_root, 'families.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    print(f'Written: {osp.join(work_root, "families.md")} and families.json')
    unexpected = [r for r in rows if r['outcome'] != (
        'runs' if expected_outcome(FAMILIES[r['family']], r['method']) is None else 'refused')]
    return 1 if unexpected else 0


def check_args(parser, args, methods, pools=()) -> None:
    """Refuse options of the other mode and values that cannot work (exit status 2);
    ``pools``: the keys of the tasks' pools (the matrix's only)."""
    timing = args.overhead or args.hypergradients
    if args.overhead and args.hypergradients:
        parser.error('--overhead and --hypergradients are separate modes: choose one')
    mode = '--overhead' if args.overhead else '--hypergradients'
    mode, others = (mode, MATRIX_ONLY) if timing else ('the matrix', OVERHEAD_ONLY)
    stray = [flag for dest, flag in others if getattr(args, dest) not in (None, False)]
    if args.jobs is not None and timing:
        stray.append('--jobs')
    if args.hypergradients and args.methods:
        stray.append('--methods')
    if args.hypergradients and args.rounds is not None:
        stray.append('--rounds')
    for dest, flag in (('load_from', '--load-from'), ('interval', '--interval')):
        if getattr(args, dest) is not None and not args.hypergradients:
            stray.append(flag)
    if stray:
        parser.error(f'{", ".join(stray)} do(es) not apply to {mode}')
    for entry in args.methods or ():
        method, colon, interval = entry.partition(':')
        if method in pools and (timing or args.families is not None):
            parser.error(f'{entry}: a pool with an added teacher runs in the method matrix '
                         'only (not with --overhead, --hypergradients or --families)')
        if method not in methods + tuple(pools):
            parser.error(f'unknown methods {[entry]}; choose from {list(methods + tuple(pools))}')
        if colon and not args.overhead:
            parser.error(f'{entry}: METHOD:INTERVAL with --overhead only')
        if colon and not (interval.isdigit() and int(interval) >= 1):
            parser.error(f'{entry}: the interval must be an integer >= 1')
    from benchmarks.methods import VARIANTS
    variants = [m for m in args.methods or () if m.partition(':')[0] in VARIANTS]
    if args.families is not None and variants:
        parser.error(f'{variants}: the family matrix runs the methods as shipped, not '
                     'their variants')
    if args.overhead and args.methods and 'aver' not in args.methods:
        parser.error('--overhead compares with AVER: list aver among --methods')
    if args.load_from and not osp.isfile(args.load_from):
        parser.error(f'--load-from {args.load_from}: no such checkpoint')
    for name, low in (('jobs', 1), ('seeds', 1), ('iters', 1), ('warmup', 0), ('rounds', 1),
                      ('interval', 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            parser.error(f'--{name} must be >= {low}')
    malformed = [option for option in args.cfg_options or () if '=' not in option]
    if malformed:
        parser.error(f'--cfg-options takes KEY=VALUE entries, not {malformed}')
    if args.tasks:
        args.tasks = list(dict.fromkeys(args.tasks))
    if args.families:
        from benchmarks.families import FAMILIES
        unknown = [name for name in args.families if name not in FAMILIES]
        if unknown:
            parser.error(f'unknown families {unknown}; choose from {sorted(FAMILIES)}')
    from benchmarks.matrix import PRESETS
    preset_tasks = PRESETS['quick' if args.quick else 'full'].tasks
    if not args.overhead and args.data_root and len(args.tasks or preset_tasks) > 1:
        parser.error('--data-root needs a single task (--tasks NAME)')


def main():
    from benchmarks.experiments import absolute_paths
    from benchmarks.methods import METHODS, VARIANTS
    from benchmarks.tasks import make_tasks
    tasks = make_tasks(ROOT)
    pool_keys = tuple(pool.key for task in tasks.values() for pool in task.pools)
    parser = argparse.ArgumentParser(
        description='mmkd_ext benchmarks: the method matrix (default) or --overhead',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--overhead', action='store_true',
                        help='time and memory of methods vs the bound and AVER')
    parser.add_argument('--families', nargs='*', metavar='FAMILY',
                        help='the family matrix: zoo families (default: all of '
                        'benchmarks/families.py) distilled with every weighting, a few '
                        'iterations each')
    parser.add_argument('--methods', nargs='+', metavar='METHOD',
                        help=f'weighting methods (default: all): {" ".join(METHODS)}; and '
                        f'variants of their hooks: {" ".join(VARIANTS)}; pools with an added '
                        f'teacher (matrix only): {" ".join(pool_keys)}; with --overhead '
                        'METHOD[:INTERVAL], aver among them (default: aver mmkd:5 '
                        'mtkd_rl mtkd_rl_stochastic)')
    matrix_args = parser.add_argument_group('the method matrix')
    matrix_args.add_argument('--quick', action='store_true',
                             help='the quick preset (classification, 3 seeds, short '
                             'schedules; ~27 min on 2 CPU cores)')
    matrix_args.add_argument('--tasks', nargs='+', choices=sorted(tasks),
                             help="default: the preset's")
    matrix_args.add_argument('--seeds', type=int, help="number of seeds (default: the preset's)")
    matrix_args.add_argument('--jobs', type=int,
                             help="runs at a time (default: 1 with a GPU, else the preset's: "
                             'quick 2): each on its own GPU when there are enough, else an '
                             'equal share of the CPU cores')
    matrix_args.add_argument('--work-root', help='default: work_dirs/benchmark/<preset>')
    matrix_args.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                             help='cfg-options given to every run, after the preset\'s')
    matrix_args.add_argument('--force', action='store_true', help='redo finished runs')
    matrix_args.add_argument('--verbose', action='store_true',
                             help="show the runs' training progress")
    over = parser.add_argument_group('--overhead')
    over.add_argument('--task', choices=sorted(tasks), help='default: classification')
    over.add_argument('--iters', type=int, default=15,
                      help='timed iterations per phase and round (default 15; for '
                      'METHOD:N rounded up to whole intervals)')
    over.add_argument('--warmup', type=int, default=5,
                      help='untimed iterations before them (default 5)')
    over.add_argument('--rounds', type=int,
                      help='times every phase is measured, in turn (default 3)')
    over.add_argument('--batch-size', type=int,
                      help='default: 64 (classification), 8 (detection, segmentation)')
    parser.add_argument('--data-root', help="the dataset's root, for one task (default: "
                        "the task's, data/<dataset>)")
    over.add_argument('--teacher-dir', help="default: the demo's (work_dirs/<dataset>/teachers)")
    parser.add_argument('--hypergradients', action='store_true',
                        help="MMKD's hypergradient options against the exact one (cosine, "
                        'time) at the meta steps of a training run; takes the --overhead '
                        'options and')
    hyper = parser.add_argument_group('--hypergradients')
    hyper.add_argument('--load-from', help='a distiller checkpoint to start from (e.g. a '
                       "trained MMKD run's), for late training states")
    hyper.add_argument('--interval', type=int, help='iterations between meta steps (default 5)')
    parser.add_argument('--overhead-child', help=argparse.SUPPRESS)
    parser.add_argument('--hypergradients-child', help=argparse.SUPPRESS)
    parser.description += '\n\n' + __doc__.split('\n', 2)[2]
    args = parser.parse_args()

    if args.overhead_child:
        from benchmarks.benchmark import measure_overhead
        print('BENCH ' + json.dumps(measure_overhead(**json.loads(args.overhead_child))),
              flush=True)
        return
    if args.hypergradients_child:
        from benchmarks.hypergradients import compare
        print('BENCH ' + json.dumps(compare(**json.loads(args.hypergradients_child))),
              flush=True)
        return
    check_args(parser, args, METHODS + tuple(VARIANTS), pool_keys)
    absolute_paths(args, ('work_root', 'data_root', 'teacher_dir', 'load_from'))  # before chdir
    os.chdir(ROOT)
    if args.families is not None:
        sys.exit(family_matrix(args, tasks))
    if args.overhead or args.hypergradients:
        task_name = args.task or 'classification'
        (overhead if args.overhead else hypergradients)(args, task_name, tasks[task_name])
    else:
        sys.exit(method_matrix(args, tasks))


if __name__ == '__main__':
    main()
