"""Run under torchrun: train configs like tools/train.py, one after another in the
same process group, and save what each rank ends with to
``<work_dir>/rank<r>.pth``: the distiller's state dict, the parameter names of the
(DDP-wrapped) model, the logged training values and the weighting hooks' state.

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_state_driver.py JOBS_JSON

``JOBS_JSON`` is a list of ``{"config": ..., "work_dir": ..., "options": {...}}``.
"""
import json
import sys

import torch
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.model import is_model_wrapper
from mmengine.utils import import_modules_from_strings

import mmkd_ext  # noqa: F401
from mmkd_ext.utils.launch import build_runner, setup_launcher
from mmkd_ext.engine.hooks.base import WeightingTrainerHook


def run(index: int, job: dict) -> None:
    cfg = Config.fromfile(job['config'])
    cfg.merge_from_dict(job['options'])
    if 'custom_imports' in job['options']:  # Config.fromfile imports them; options come later
        import_modules_from_strings(**job['options']['custom_imports'])
    cfg.work_dir = job['work_dir']
    cfg.experiment_name = f'job{index}'
    setup_launcher(cfg, 'pytorch')
    runner = build_runner(cfg)
    runner.train()
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    logs = {k: buffer.data[0].tolist() for k, buffer in runner.message_hub.log_scalars.items()
            if k.startswith('train/')}
    hooks = {type(h).__name__: h.state_dict() for h in runner.hooks
             if isinstance(h, WeightingTrainerHook)}
    torch.save(dict(state=model.state_dict(), logs=logs, hooks=hooks,
                    teachers=model.teacher_names,
                    wrapped=[n for n, _ in runner.model.named_parameters()]),
               f'{job["work_dir"]}/rank{get_rank()}.pth')


def main():
    for index, job in enumerate(json.loads(sys.argv[1])):
        run(index, job)


if __name__ == '__main__':
    main()
