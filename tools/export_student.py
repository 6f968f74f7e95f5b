"""Export a distilled student (or any trained model) as a plain checkpoint.

The result loads in plain mmpretrain / mmdet / mmseg (``init_model`` or
``load_from``) with the student's own config; mmkd_ext is not needed to use it.

    python tools/export_student.py work_dirs/kd/epoch_6.pth student.pth
"""
import argparse

from mmkd_ext.apis.export import export_student


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='checkpoint written by tools/train.py')
    parser.add_argument('out', help='path of the exported checkpoint')
    args = parser.parse_args()
    info = export_student(args.checkpoint, args.out)
    what = 'distilled student' if info['from_distiller'] else 'model'
    print(f"Exported the {what} ({info['num_tensors']} tensors) to {args.out}")


if __name__ == '__main__':
    main()
