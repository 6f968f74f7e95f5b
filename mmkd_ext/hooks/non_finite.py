"""SkipNonFiniteStepsHook: skip training steps whose loss is not finite."""
import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkd_ext.registry import HOOKS


@HOOKS.register_module()
class SkipNonFiniteStepsHook(Hook):
    """Skip, instead of stopping at, a training step with a non-finite term.

    By default :class:`~mmkd_ext.distillers.MultiTeacherDistiller` stops training
    when a term of a step (a teacher's KD term or weight, the student's own loss) is
    NaN or infinite. With this hook the step's backward still runs (DDP needs it on
    every rank), but the student's optimizer step is dropped: every parameter's
    gradient is cleared right before ``optimizer.step()``, so no parameter, moment
    or step count moves (BN running statistics, updated by the forward pass, do).
    All ranks skip together. The MMKD and MTKD-RL hooks do not learn from a skipped
    step. Each skip is logged with the terms that caused it, and the running count
    as ``skipped_steps``; ``max_skipped`` consecutive skips stop training.

    Usage: ``custom_hooks = [dict(type='mmkd_ext.SkipNonFiniteStepsHook')]``.

    Args:
        max_skipped (int): consecutive skipped steps after which training stops.
    """
    priority = 'VERY_HIGH'

    def __init__(self, max_skipped: int = 100):
        if max_skipped < 1:
            raise ValueError('max_skipped must be >= 1.')
        self.max_skipped = max_skipped
        self.skipped = 0
        self._consecutive = 0
        self._model = None
        self._handles = []

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'skip_non_finite'):
            raise TypeError('SkipNonFiniteStepsHook needs a MultiTeacherDistiller model, '
                            f'got {type(model).__name__}.')
        model.skip_non_finite = True
        self._model = model
        wrappers = runner.optim_wrapper.values() if hasattr(
            runner.optim_wrapper, 'values') else [runner.optim_wrapper]
        self._handles = [w.optimizer.register_step_pre_hook(self._drop_gradients)
                         for w in wrappers]

    def _drop_gradients(self, optimizer, args, kwargs) -> None:
        """Step pre-hook: a parameter without gradient is left alone by the step."""
        if self._model.non_finite_terms:
            for group in optimizer.param_groups:
                for param in group['params']:
                    param.grad = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        terms = self._model.non_finite_terms
        if terms:
            self.skipped += 1
            self._consecutive += 1
            print_log(f'Iteration {runner.iter + 1}: step skipped, non-finite: '
                      f'{"; ".join(terms)}', logger='current', level=logging.WARNING)
            if self._consecutive >= self.max_skipped:
                raise FloatingPointError(
                    f'{self._consecutive} consecutive training steps had non-finite '
                    f'terms (the last: {"; ".join(terms)}); stopping. Checkpoints '
                    'already written are intact.')
        else:
            self._consecutive = 0
        runner.message_hub.update_scalar('train/skipped_steps', self.skipped)

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._model is not None:
            self._model.skip_non_finite = False

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['skip_non_finite_steps_hook'] = dict(skipped=self.skipped)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.skipped = int(checkpoint.get('skip_non_finite_steps_hook', {}).get('skipped', 0))
