"""Benchmarks of mmkd_ext.

``overhead``: seconds per iteration and peak memory of each weighting method against
AVER on the Shapes-10 demo configuration, each in its own process, in one run:

    python tools/benchmark.py overhead [--iters 40] [--warmup 5] [--batch-size 64]
                                       [--methods aver mmkd:5 mtkd_rl ...]

``METHOD:N`` sets the update interval of the method's hook (MMKD's meta interval,
MTKD-RL's agent interval); without it the method's config is used as is.

Teachers come from work_dirs/shapes10/teachers (``make demo``) when present;
otherwise randomly initialised teachers of the same architectures are used (their
weights do not change the cost).
"""
import argparse
import json
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
KD_CONFIGS = osp.join(ROOT, 'configs/classification/distill')
TEACHERS = ('resnet18_w24', 'resnet18_w16', 'resnet50_w8')


def prepare_teachers(teacher_dir: str) -> str:
    """Teacher checkpoints for timing: the demo's, or random ones written once."""
    if all(osp.isfile(osp.join(teacher_dir, f'{t}.pth')) for t in TEACHERS):
        return teacher_dir
    import torch
    from mmkd_ext.utils.model_builder import build_model
    folder = osp.join(ROOT, 'work_dirs', 'benchmark', 'random_teachers')
    os.makedirs(folder, exist_ok=True)
    for name in TEACHERS:
        path = osp.join(folder, f'{name}.pth')
        if not osp.isfile(path):
            model, _ = build_model(osp.join(ROOT, f'configs/classification/teachers/{name}_shapes10.py'))
            model.init_weights()
            torch.save(dict(state_dict=model.state_dict()), path)
    return folder


def main():
    parser = argparse.ArgumentParser(description='mmkd_ext benchmarks')
    sub = parser.add_subparsers(dest='mode', required=True)
    over = sub.add_parser('overhead', help='time and memory of methods vs AVER')
    over.add_argument('--iters', type=int, default=40)
    over.add_argument('--warmup', type=int, default=5)
    over.add_argument('--batch-size', type=int, default=64)
    over.add_argument('--methods', nargs='+',
                      default=['aver', 'mmkd:5', 'mtkd_rl', 'mtkd_rl_stochastic'],
                      help='METHOD[:INTERVAL] entries (aver among them); methods: '
                      'aver fixed entropy confidence mmkd mtkd_rl mtkd_rl_stochastic')
    over.add_argument('--data-root', default=osp.join(ROOT, 'data/shapes10'))
    over.add_argument('--teacher-dir', default=osp.join(ROOT, 'work_dirs/shapes10/teachers'))
    child = sub.add_parser('_child')
    child.add_argument('spec')
    args = parser.parse_args()

    from mmkd_ext.engine.benchmark import (METHODS, format_overhead_table, measure,
                                           run_in_subprocess)
    if args.mode == '_child':
        spec = json.loads(args.spec)
        print('BENCH ' + json.dumps(measure(KD_CONFIGS, **spec)), flush=True)
        return

    os.chdir(ROOT)
    from mmkd_ext.datasets import generate_shapes10
    generate_shapes10(args.data_root)
    teacher_dir = prepare_teachers(args.teacher_dir)
    options = {f'{split}_dataloader.dataset.data_root': args.data_root
               for split in ('train', 'val', 'test')}
    options.update({f'model.teachers.{i}.checkpoint': osp.join(teacher_dir, f'{t}.pth')
                    for i, t in enumerate(TEACHERS)})
    rows = []
    for entry in args.methods:
        method, _, interval = entry.partition(':')
        if method not in METHODS:
            parser.error(f'unknown method {method!r}; choose from {sorted(METHODS)}')
        spec = dict(method=method, interval=int(interval) if interval else None, iters=args.iters,
                    warmup=args.warmup, batch_size=args.batch_size, options=options)
        print(f'[benchmark] {entry}: {args.warmup} warm-up + {args.iters} timed iterations',
              flush=True)
        rows.append(run_in_subprocess([__file__, '_child', json.dumps(spec)]))
    print()
    print(format_overhead_table(rows))


if __name__ == '__main__':
    main()
