"""Run under torchrun: train a config like tools/train.py, then save each rank's
distiller state to ``<work_dir>/rank<r>.pth`` so tests can compare the ranks.

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_state_driver.py \
        CONFIG WORK_DIR OPTIONS_JSON
"""
import json
import sys

import torch
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.model import is_model_wrapper

import mmkd_ext  # noqa: F401
from mmkd_ext.engine.launch import build_runner, setup_launcher


def main():
    config, work_dir, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = work_dir
    setup_launcher(cfg, 'pytorch')
    runner = build_runner(cfg)
    runner.train()
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    torch.save(model.state_dict(), f'{work_dir}/rank{get_rank()}.pth')


if __name__ == '__main__':
    main()
