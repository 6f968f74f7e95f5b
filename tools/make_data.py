"""Write the generated datasets (real formats) that the demo, tests and benchmark use.

    python tools/make_data.py classification [--out data/shapes10] [--train 2000]
                                             [--val 500] [--seed 0]
    python tools/make_data.py detection [--out data/coco_shapes] [--train 800]
                                        [--val 200] [--size 160] [--seed 0]
    python tools/make_data.py segmentation [--out data/cityscapes_streets] [--train 400]
                                           [--val 100] [--height 128] [--width 256]
                                           [--seed 0]
"""
import argparse

from mmkd_ext.synthetic_data import generate_coco_shapes, generate_shapes10, generate_street_scenes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='task', required=True)
    cls = sub.add_parser('classification', help='Shapes-10, mmpretrain folder format')
    cls.add_argument('--out', default='data/shapes10')
    cls.add_argument('--train', type=int, default=2000)
    cls.add_argument('--val', type=int, default=500)
    cls.add_argument('--seed', type=int, default=0)
    det = sub.add_parser('detection', help='Shapes-COCO, COCO instances layout')
    det.add_argument('--out', default='data/coco_shapes')
    det.add_argument('--train', type=int, default=800)
    det.add_argument('--val', type=int, default=200)
    det.add_argument('--size', type=int, default=160, help='image side in pixels')
    det.add_argument('--seed', type=int, default=0)
    seg = sub.add_parser('segmentation', help='Cityscapes-Streets, Cityscapes layout')
    seg.add_argument('--out', default='data/cityscapes_streets')
    seg.add_argument('--train', type=int, default=400)
    seg.add_argument('--val', type=int, default=100)
    seg.add_argument('--height', type=int, default=128, help='image height in pixels')
    seg.add_argument('--width', type=int, default=256, help='image width in pixels')
    seg.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    if args.task == 'classification':
        meta = generate_shapes10(args.out, args.train, args.val, args.seed)
        name, unit = 'Shapes-10', f'{len(meta["classes"])} classes'
    elif args.task == 'detection':
        meta = generate_coco_shapes(args.out, args.train, args.val, args.seed, args.size)
        name, unit = 'Shapes-COCO', f'{len(meta["categories"])} categories'
    else:
        meta = generate_street_scenes(args.out, args.train, args.val, args.seed, args.height,
                                      args.width)
        name = 'Cityscapes-Streets'
        unit = f'{args.width}x{args.height}, {len(meta["classes"])} classes'
    state = 'already there, skipped' if meta['skipped'] else 'written'
    print(f"{name} at {args.out}: {meta['num_train']} train / {meta['num_val']} "
          f'val images, {unit} ({state}).')


if __name__ == '__main__':
    main()
