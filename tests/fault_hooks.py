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
    """From iteration ``iteration`` (1-based) until before ``until`` (to the end by
    default), teacher ``index`` outputs NaN on rank ``rank`` (every rank by
    default): a NaN is written into its classifier bias."""
    priority = 'VERY_HIGH'

    def __init__(self, iteration: int, index: int = 1, until: int = None, rank: int = None):
        self.iteration, self.index, self.until, self.rank = iteration, index, until, rank
        self._saved = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        from mmengine.dist import get_rank
        from mmengine.model import is_model_wrapper
        if self.rank is not None and get_rank() != self.rank:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        bias = model.teachers[self.index].head.fc.bias
        with torch.no_grad():
            if runner.iter + 1 == self.iteration:
                self._saved = bias[0].clone()
                bias[0] = float('nan')
            elif runner.iter + 1 == self.until:
                bias[0] = self._saved
