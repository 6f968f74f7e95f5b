"""Evaluate a checkpoint with the config's test dataloader and metrics.

For a distiller config the student is evaluated (the teachers are not run).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import json

from mmengine.config import Config
from mmengine.evaluator import DumpResults

import mmkd_ext  # noqa: F401
from mmkd_ext.utils.launch import (add_launch_args, build_runner, default_work_dir,
                                    parse_launch_args, setup_launcher)


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a model or a distilled student')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log')
    parser.add_argument('--out', help='dump predictions to this pickle file')
    parser.add_argument('--metrics-json', help='also write the metrics to this JSON file')
    add_launch_args(parser)
    return parse_launch_args(parser)


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = default_work_dir(cfg, args.config, args.work_dir)
    cfg.load_from = args.checkpoint
    setup_launcher(cfg, args.launcher)
    runner = build_runner(cfg)
    if args.out:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = {k: float(v) for k, v in runner.test().items()}
    if args.metrics_json:
        with open(args.metrics_json, 'w') as f:
            json.dump(metrics, f, indent=2)


if __name__ == '__main__':
    main()
