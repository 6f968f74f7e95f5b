"""Write the generated datasets (real formats) that the demo, tests and benchmark use.

    python tools/make_data.py classification [--out data/shapes10] [--train 2000]
                                             [--val 500] [--seed 0]
"""
import argparse

from mmkd_ext.datasets import generate_shapes10


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='task', required=True)
    cls = sub.add_parser('classification', help='Shapes-10, mmpretrain folder format')
    cls.add_argument('--out', default='data/shapes10')
    cls.add_argument('--train', type=int, default=2000)
    cls.add_argument('--val', type=int, default=500)
    cls.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    meta = generate_shapes10(args.out, args.train, args.val, args.seed)
    state = 'already there, skipped' if meta['skipped'] else 'written'
    print(f"Shapes-10 at {args.out}: {meta['num_train']} train / {meta['num_val']} "
          f'val images, {len(meta["classes"])} classes ({state}).')


if __name__ == '__main__':
    main()
