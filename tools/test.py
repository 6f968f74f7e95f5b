"""Evaluate a checkpoint with the config's test dataloader and metrics.

For a distiller config the student is evaluated (the teachers are not run).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--metrics-json M.json] [--bn-batch-stats]
                         [--cfg-options k=v ...] [--launcher pytorch]

``--bn-batch-stats`` evaluates the checkpoint a second time with the evaluated
model's BatchNorm layers normalising with each batch's statistics (see
mmkd_ext/utils/batch_stats.py), its batches drawn in a seeded random order, prints
both scores on one line and adds the second set to the metrics JSON under
``bn_batch_stats/``.
"""
import argparse
import json

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults

import mmkd_ext  # noqa: F401
from mmkd_ext.utils.batch_stats import (batch_statistics, evaluated_model,
                                        format_comparison, prefixed, shuffled_loader)
from mmkd_ext.utils.launch import (add_launch_args, build_runner, default_work_dir,
                                    parse_launch_args, setup_launcher)


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a model or a distilled student')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log')
    parser.add_argument('--out', help='dump predictions to this pickle file')
    parser.add_argument('--metrics-json', help='also write the metrics to this JSON file')
    parser.add_argument('--bn-batch-stats', action='store_true',
                        help='evaluate again with BatchNorm using batch statistics')
    add_launch_args(parser)
    return parse_launch_args(parser)


def test_with_batch_statistics(runner, metrics: dict) -> dict:
    """Run the test loop again with batch statistics in the evaluated model's BN
    layers; returns the metrics prefixed ``bn_batch_stats/`` ({} without BN, or when
    this second pass cannot run: a message says why, the usual metrics stand)."""
    evaluator_metrics = runner.test_evaluator.metrics
    kept = list(evaluator_metrics)
    loop = runner.test_loop
    loader = loop.dataloader
    try:
        with batch_statistics(evaluated_model(runner.model)) as layers:
            if not layers:
                if is_main_process():
                    print('--bn-batch-stats: the model has no BatchNorm layer; no extra '
                          'metrics')
                return {}
            # --out keeps the predictions of the usual pass.
            evaluator_metrics[:] = [m for m in kept if not isinstance(m, DumpResults)]
            loop.dataloader = shuffled_loader(loader)  # batches of mixed classes
            batch = {k: float(v) for k, v in loop.run().items()}
    except (ValueError, RuntimeError) as error:
        if is_main_process():
            print(f'--bn-batch-stats: the pass with batch statistics could not run '
                  f'({type(error).__name__}: {error}); e.g. a BN layer that sees one value '
                  'per channel (a batch of one image through a global pooling branch) '
                  'needs a larger test batch: test_dataloader.batch_size=8. The usual '
                  'metrics stand.', flush=True)
        return {}
    finally:
        evaluator_metrics[:] = kept
        loop.dataloader = loader
    if is_main_process():
        print(format_comparison(metrics, batch), flush=True)
    return prefixed(batch)


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
    write_metrics(args.metrics_json, metrics)  # kept whatever the second pass does
    if args.bn_batch_stats:
        metrics.update(test_with_batch_statistics(runner, metrics))
        write_metrics(args.metrics_json, metrics)


def write_metrics(path, metrics: dict) -> None:
    if path and is_main_process():
        with open(path, 'w') as f:
            json.dump(metrics, f, indent=2)


if __name__ == '__main__':
    main()
