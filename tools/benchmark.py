"""Benchmarks of mmkd_ext.

``overhead``: seconds per iteration and peak memory of each weighting method against
the physical bound and against AVER, on a task's demo configuration, all measured in
one process on the same batch stream: (a) the student's training step alone, (b) each
teacher's inference forward alone, (c) a full KD step per method. Bound = (a) + sum(b).

    python tools/benchmark.py overhead [--task classification|detection|segmentation]
        [--iters 40] [--warmup 5] [--batch-size N] [--methods aver mmkd:5 mtkd_rl ...]

``METHOD:N`` sets the update interval of the method's hook (MMKD's meta interval,
MTKD-RL's agent interval); without it the method's config is used as is.

Teachers come from the demo's work_dirs/<dataset>/teachers when present;
otherwise randomly initialised teachers of the same architectures are used (their
weights do not change the cost).
"""
import argparse
import hashlib
import json
import os
import os.path as osp
from typing import Dict

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


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


def main():
    from mmkd_ext.engine.benchmark import (METHODS, format_overhead_table, measure_overhead,
                                           run_in_subprocess)
    from mmkd_ext.engine.tasks import make_tasks
    tasks = make_tasks(ROOT)
    parser = argparse.ArgumentParser(description='mmkd_ext benchmarks')
    sub = parser.add_subparsers(dest='mode', required=True)
    over = sub.add_parser('overhead', help='time and memory of methods vs the bound and AVER')
    over.add_argument('--task', choices=sorted(tasks), default='classification')
    over.add_argument('--iters', type=int, default=40)
    over.add_argument('--warmup', type=int, default=5)
    over.add_argument('--batch-size', type=int, help='default: 64 (classification), 8 (detection, segmentation)')
    over.add_argument('--methods', nargs='+',
                      default=['aver', 'mmkd:5', 'mtkd_rl', 'mtkd_rl_stochastic'],
                      help=f'METHOD[:INTERVAL] entries (aver among them); methods: '
                      f'{" ".join(METHODS)}')
    over.add_argument('--data-root', help="default: the task's (data/<dataset>)")
    over.add_argument('--teacher-dir', help="default: the demo's (work_dirs/<dataset>/teachers)")
    child = sub.add_parser('_child')
    child.add_argument('spec')
    args = parser.parse_args()

    if args.mode == '_child':
        spec = json.loads(args.spec)
        print('BENCH ' + json.dumps(measure_overhead(**spec)), flush=True)
        return

    os.chdir(ROOT)
    task = tasks[args.task]
    data_root = args.data_root or task.data_root
    task.generate(data_root)
    checkpoints = prepare_teachers(task, args.teacher_dir
                                   or osp.join(task.work_root, 'teachers'))
    options = task.data_options(data_root)
    options.update({f'model.teachers.{i}.checkpoint': checkpoints[run.export_as]
                    for i, run in enumerate(task.teachers)})
    batch_size = args.batch_size or (64 if args.task == 'classification' else 8)
    unknown = [e for e in args.methods if e.partition(':')[0] not in METHODS]
    if unknown:
        parser.error(f'unknown methods {unknown}; choose from {list(METHODS)}')
    spec = dict(configs={m: task.distill_config(m) for m in METHODS}, entries=args.methods,
                iters=args.iters, warmup=args.warmup, batch_size=batch_size, options=options)
    print(f'[benchmark] {args.task}, batch {batch_size}: the bound (student step, each '
          f'teacher forward), then {" ".join(args.methods)}, in one process', flush=True)
    result = run_in_subprocess([__file__, '_child', json.dumps(spec)])
    print()
    print(format_overhead_table(result))


if __name__ == '__main__':
    main()
