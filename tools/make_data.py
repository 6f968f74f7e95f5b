"""Write the generated datasets (real formats) that the demo, tests and benchmark use.

    python tools/make_data.py classification [--out data/shapes10] [--train 2000]
                                             [--val 3000] [--seed 0]
    python tools/make_data.py detection [--out data/coco_shapes] [--train 800]
                                        [--val 200] [--size 160] [--seed 0]
    python tools/make_data.py segmentation [--out data/cityscapes_streets] [--train 400]
                                           [--val 100] [--height 128] [--width 256]
                                           [--seed 0]
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository's benchmarks/ package

from benchmarks.tasks import make_tasks  # noqa: E402


def main():
    tasks = make_tasks(ROOT)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='task', required=True)
    layouts = dict(classification='mmpretrain folder format',
                   detection='COCO instances layout', segmentation='Cityscapes layout')
    parsers = {}
    for name, layout in layouts.items():
        parsers[name] = sub.add_parser(name, help=f'{tasks[name].dataset}, {layout}')
        parsers[name].add_argument('--out', default=tasks[name].data_root)
    cls, det, seg = parsers['classification'], parsers['detection'], parsers['segmentation']
    cls.add_argument('--train', type=int, default=2000)
    cls.add_argument('--val', type=int, default=3000)
    cls.add_argument('--seed', type=int, default=0)
    det.add_argument('--train', type=int, default=800)
    det.add_argument('--val', type=int, default=200)
    det.add_argument('--size', type=int, default=160, help='image side in pixels')
    det.add_argument('--seed', type=int, default=0)
    seg.add_argument('--train', type=int, default=400)
    seg.add_argument('--val', type=int, default=100)
    seg.add_argument('--height', type=int, default=128, help='image height in pixels')
    seg.add_argument('--width', type=int, default=256, help='image width in pixels')
    seg.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    task = tasks[args.task]
    if args.task == 'classification':
        meta = task.generate(args.out, args.train, args.val, args.seed)
        unit = f'{len(meta["classes"])} classes'
    elif args.task == 'detection':
        meta = task.generate(args.out, args.train, args.val, args.seed, args.size)
        unit = f'{len(meta["categories"])} categories'
    else:
        meta = task.generate(args.out, args.train, args.val, args.seed, args.height,
                             args.width)
        unit = f'{args.width}x{args.height}, {len(meta["classes"])} classes'
    state = 'already there, skipped' if meta['skipped'] else 'written'
    print(f"{task.dataset} at {args.out}: {meta['num_train']} train / {meta['num_val']} "
          f'val images, {unit} ({state}).')


if __name__ == '__main__':
    main()
