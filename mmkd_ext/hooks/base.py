"""What the hooks that train a weighting method have in common."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


class WeightingTrainerHook(Hook):
    """Base of the hooks that train a weighting method's parameters outside the
    student's optimizer (:class:`MetaWeightHook`, :class:`RLAgentHook`).

    - :meth:`distiller` returns the (unwrapped) distiller and checks that its
      weighting is ``weighting_type``;
    - the hook's own state (:meth:`state_dict`) is saved in every checkpoint under
      ``checkpoint_key`` and restored by :meth:`load_state_dict` on ``--resume``
      only (``runner.iter > 0`` in ``before_train``), not for a plain ``load_from``.
      Subclasses call :meth:`restore_on_resume` in their ``before_train``, once
      their optimizer exists.
    """
    priority = 'ABOVE_NORMAL'  # right after the optimizer step, before the LR scheduler
    weighting_type: type = object
    checkpoint_key: str = ''

    def distiller(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(getattr(model, 'weighting', None), self.weighting_type):
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
        state: Optional[dict] = getattr(self, '_resumed_state', None)
        if state is not None and runner.iter > 0:
            self.load_state_dict(state)
        self._resumed_state = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[self.checkpoint_key] = self.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_state = checkpoint.get(self.checkpoint_key)
