"""Plot each teacher's mean weight over a distillation run.

    python tools/plot_teacher_weights.py WORK_DIR [--out teacher_weights.png]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # benchmarks/

from benchmarks.plotting import plot_teacher_weights  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', help='work directory of a tools/train.py run')
    parser.add_argument('--out', help='PNG path (default: WORK_DIR/teacher_weights.png)')
    args = parser.parse_args()
    print(f'Saved {plot_teacher_weights(args.work_dir, args.out)}')


if __name__ == '__main__':
    main()
