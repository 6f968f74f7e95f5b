"""What tools/train.py and tools/test.py do to a config before building the runner."""
import argparse
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    """The flags tools/train.py and tools/test.py share (``--cfg-options``,
    ``--launcher``, ``--local-rank``)."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_cfg.max_epochs=2 model.weighting.type=mmkd_ext.UniformWeighting')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_launch_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and export ``LOCAL_RANK`` when the launcher passed it as a flag."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_runner(cfg: Config) -> Runner:
    """MMEngine's runner, or the config's ``runner_type``."""
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def default_work_dir(cfg: Config, config_path: str, work_dir: str = None) -> str:
    """CLI ``--work-dir`` > ``work_dir`` in the file > ``work_dirs/<config name>``."""
    if work_dir is not None:
        return work_dir
    if cfg.get('work_dir') is not None:
        return cfg.work_dir
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to AMP, or explain why it cannot run here."""
    if not torch.cuda.is_available():
        raise SystemExit(
            '--amp needs a CUDA device and none is available on this machine; '
            'run without --amp to train in float32 on the CPU.')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Record the launcher; without CUDA, make distributed runs use gloo on CPU.

    With ``--launcher pytorch`` and no CUDA device, MMEngine would call
    ``torch.cuda.set_device`` and wrap the model with CUDA device ids. Instead the
    process group is created here with gloo, and DDP gets no device ids, so the same
    ``tools/dist_train.sh`` command works on a laptop.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise SystemExit(f'--launcher {launcher} without CUDA is not supported; '
                         'use --launcher pytorch (torchrun) on CPU.')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.update(device_ids=None)
    wrapper.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper
    if not dist.is_initialized():
        dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
