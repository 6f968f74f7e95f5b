"""What the hooks that train a weighting method have in common."""
import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkd_ext.models.distillers.contract import DistillerContract


class WeightingTrainerHook(Hook):
    """Base of the hooks that train a weighting method's parameters outside the
    student's optimizer (:class:`MetaWeightHook`, :class:`RLAgentHook`).

    - :meth:`distiller` returns the (unwrapped) distiller, checks that it has the
      hooks' interface (:class:`~mmkd_ext.models.distillers.DistillerContract`,
      the only part of the model a hook uses) and that its weighting is
      ``weighting_type``;
    - the hook's own state (:meth:`state_dict`) is saved in every checkpoint under
      ``checkpoint_key`` and restored by :meth:`load_state_dict` on ``--resume``
      only (``runner.iter > 0`` in ``before_train``), not for a plain ``load_from``.
      Subclasses call :meth:`restore_on_resume` in their ``before_train``, once
      their optimizer exists.
    """
    priority = 'ABOVE_NORMAL'  # right after the optimizer step, before the LR scheduler
    weighting_type: type  # set by subclasses
    checkpoint_key: str
    _resumed_state: Optional[dict] = None  # from after_load_checkpoint
    _loaded_checkpoint: bool = False

    def distiller(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, DistillerContract):
            raise TypeError(f'{type(self).__name__} needs a MultiTeacherDistiller model, '
                            f'got {type(model).__name__}.')
        if not isinstance(model.weighting, self.weighting_type):
            name = self.weighting_type.__name__
            raise TypeError(f'{type(self).__name__} needs a distiller whose weighting is '
                            f"{name}: set model.weighting=dict(type='{name}').")
        return model

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        """Restore from a checkpoint (tensors may arrive on any device)."""
        raise NotImplementedError

    def restore_on_resume(self, runner) -> None:
        if runner.iter > 0 and self._resumed_state is not None:
            self.load_state_dict(self._resumed_state)
        elif runner.iter > 0 and self._resumed_state is None and self._loaded_checkpoint:
            print_log(f'{type(self).__name__}: the resumed checkpoint has no '
                      f'{self.checkpoint_key!r} state; the hook starts afresh.',
                      logger='current', level=logging.WARNING)
        self._resumed_state = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[self.checkpoint_key] = self.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded_checkpoint = True
        self._resumed_state = checkpoint.get(self.checkpoint_key)
