"""SkipNonFiniteStepsHook: skip training steps whose loss is not finite."""
import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkd_ext.models.distillers.contract import DistillerContract
from mmkd_ext.registry import HOOKS


@HOOKS.register_module()
class SkipNonFiniteStepsHook(Hook):
    """Skip, instead of stopping at, a training step with a non-finite term.

    By default :class:`~mmkd_ext.models.distillers.MultiTeacherDistiller` stops training
    when a term of a step (a teacher's KD term or weight, the student's own loss) is
    NaN or infinite. With this hook the distiller returns a zero loss for such a
    step instead, so its backward still runs (DDP needs it on every rank) and adds
    nothing to the gradients; all ranks skip together. When every (accumulated)
    step since the last optimizer step was skipped, that optimizer step is dropped:
    the gradients are cleared right before it, so no parameter, moment or step count
    moves. The LR schedule, BN running statistics (updated by the forward pass) and
    an AMP loss scale do move. The MMKD and MTKD-RL hooks do not learn from a
    skipped step. Each skip is logged with the terms that caused it, and the count
    as ``skipped_steps``; ``max_skipped`` consecutive skips stop training.

    The hook turns skipping on through the distiller's
    ``step_health.set_non_finite_policy('skip')`` for the training run (and back to
    ``'raise'`` after it), and reads ``step_health.skipped`` and
    ``step_health.non_finite_terms`` after each step (see
    :class:`~mmkd_ext.models.distillers.DistillerContract`).

    Usage: ``custom_hooks = [dict(type='mmkd_ext.SkipNonFiniteStepsHook')]``.

    Args:
        max_skipped (int): consecutive skipped steps after which training stops.
    """
    priority = 'VERY_HIGH'
    checkpoint_key = 'skip_non_finite_steps_hook'

    def __init__(self, max_skipped: int = 100):
        if max_skipped < 1:
            raise ValueError('max_skipped must be >= 1.')
        self.max_skipped = max_skipped
        self.skipped = 0
        self._consecutive = 0
        self._good_since_update = False  # a finite step added to the pending gradients
        self._stepped = False  # the optimizer stepped during this iteration
        self._resumed: Optional[int] = None
        self._health = None  # the distiller's StepHealth, from before_train
        self._handles = []

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, DistillerContract):
            raise TypeError('SkipNonFiniteStepsHook needs a MultiTeacherDistiller model, '
                            f'got {type(model).__name__}.')
        if not model.step_health.check_finite:
            raise ValueError('SkipNonFiniteStepsHook needs model.check_finite=True (it '
                             'skips the steps that check finds).')
        model.step_health.set_non_finite_policy('skip')
        self._health = model.step_health
        if runner.iter > 0 and self._resumed is not None:
            self.skipped = self._resumed
        self._resumed = None
        wrappers = runner.optim_wrapper.values() if hasattr(
            runner.optim_wrapper, 'values') else [runner.optim_wrapper]
        for wrapper in wrappers:
            self._handles += [wrapper.optimizer.register_step_pre_hook(self._before_step),
                              wrapper.optimizer.register_step_post_hook(self._after_step)]

    def _before_step(self, optimizer, args, kwargs) -> None:
        """Clear the gradients when no finite step contributed to them: a parameter
        without gradient is left alone by the step."""
        if self._health.skipped and not self._good_since_update:
            for group in optimizer.param_groups:
                for param in group['params']:
                    param.grad = None

    def _after_step(self, optimizer, args, kwargs) -> None:
        self._stepped = True

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        step_skipped, terms = self._health.skipped, self._health.non_finite_terms
        if self._stepped:  # the gradients were used: a new accumulation window starts
            self._stepped = self._good_since_update = False
        elif not step_skipped:
            self._good_since_update = True
        if not step_skipped:
            self._consecutive = 0
        else:
            self.skipped += 1
            self._consecutive += 1
            print_log(f'Iteration {runner.iter + 1}: step skipped, non-finite: '
                      f'{"; ".join(terms)}', logger='current', level=logging.WARNING)
            if self._consecutive >= self.max_skipped:
                raise FloatingPointError(
                    f'{self._consecutive} consecutive training steps had non-finite '
                    f'terms (the last: {"; ".join(terms)}); stopping. Checkpoints '
                    'already written are intact.')
        runner.message_hub.update_scalar('train/skipped_steps', self.skipped)

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._health is not None:
            self._health.set_non_finite_policy('raise')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[self.checkpoint_key] = dict(skipped=self.skipped)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the count for ``--resume`` (applied in ``before_train``), not for a
        plain ``load_from``."""
        self._resumed = int(checkpoint.get(self.checkpoint_key, {}).get('skipped', 0))
