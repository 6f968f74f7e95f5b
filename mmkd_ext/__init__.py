"""mmkd_ext: multi-teacher knowledge distillation for OpenMMLab 2.x."""
from . import adapters, datasets, distillers, hooks, losses, task_views, weighting  # noqa: F401
from . import utils  # noqa: F401 (installs the weights-only checkpoint loader)
from .registry import DATASETS, HOOKS, MODELS, TASK_VIEWS
from .version import __version__

__all__ = ['MODELS', 'HOOKS', 'DATASETS', 'TASK_VIEWS', '__version__']
