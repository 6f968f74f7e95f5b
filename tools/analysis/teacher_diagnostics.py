"""Score each teacher of a distillation config and measure the room a per-sample
teacher weighting has: pairwise agreement, per-sample losses, the per-sample oracle.

    python tools/analysis/teacher_diagnostics.py CONFIG [--cfg-options k=v ...]
                                                 [--out-dir DIR] [--max-batches N]

Writes teacher_diagnostics.json, .md and .png to DIR (default:
work_dirs/teacher_diagnostics/<config name>) and prints the tables.
"""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

import mmkd_ext  # noqa: F401
from mmkd_ext.analysis import (DiagnosticsInputError, check_distiller_config,
                               diagnose_teachers, format_markdown, write_report)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='distillation config (model.type is '
                        'mmkd_ext.MultiTeacherDistiller)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'model.teachers.0.checkpoint=path/to/teacher.pth val_dataloader.batch_size=32')
    parser.add_argument('--out-dir', help='where to write the report (default: '
                        'work_dirs/teacher_diagnostics/<config name>)')
    parser.add_argument('--max-batches', type=int,
                        help='stop after this many val batches (a quick look)')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    name = osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out_dir or osp.join('./work_dirs', 'teacher_diagnostics', name)
    try:
        check_distiller_config(cfg, args.config)
        report = diagnose_teachers(cfg, args.max_batches)
    except DiagnosticsInputError as error:
        raise SystemExit(f'teacher_diagnostics: {error}')
    report['config'] = args.config
    title = f'Teacher diagnostics: {name}'
    print_log('\n' + format_markdown(report, title), logger='current')
    write_report(report, out_dir, title)


if __name__ == '__main__':
    main()
