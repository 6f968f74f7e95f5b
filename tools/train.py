"""Train a model (a teacher, a student alone, or a distiller) from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse

from mmengine.config import Config

import mmkd_ext  # noqa: F401 (registers mmkd_ext types, safe checkpoint loading and saving)
from mmkd_ext.utils.launch import (add_launch_args, build_runner, default_work_dir,
                                    enable_amp, parse_launch_args, setup_launcher)
from mmkd_ext.utils import latest_checkpoint


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model or a distiller')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a path from the latest '
        'checkpoint in the work directory')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision training (CUDA only)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    add_launch_args(parser)
    return parse_launch_args(parser)


def merge_args(cfg: Config, args) -> Config:
    """Apply the command-line flags to the config."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = default_work_dir(cfg, args.config, args.work_dir)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        # The newest complete checkpoint, also when `last_checkpoint` is stale.
        found = latest_checkpoint(cfg.work_dir)
        if found is None:  # a first run: start as configured (load_from, if set)
            print(f'--resume: no checkpoint in {cfg.work_dir} yet; training starts afresh.')
        else:
            cfg.resume, cfg.load_from = True, found
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    setup_launcher(cfg, args.launcher)
    return cfg


def main():
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
