"""Hooks that inject faults into a training run (imported by configs via
``custom_imports`` in subprocess tests, or registered directly in-process)."""
import os
import signal

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAfterCheckpoint(Hook):
    """SIGKILL the process right after iteration ``iteration``'s checkpoint is written
    (the CheckpointHook runs before this hook: priority LOWEST)."""
    priority = 'LOWEST'

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class PoisonTeacher(Hook):
    """From iteration ``iteration`` (1-based) on, teacher ``index`` outputs NaN:
    a NaN is written into its classifier bias."""
    priority = 'VERY_HIGH'

    def __init__(self, iteration: int, index: int = 1):
        self.iteration, self.index = iteration, index

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            with torch.no_grad():
                runner.model.teachers[self.index].head.fc.bias[0] = float('nan')
