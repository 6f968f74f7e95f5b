"""mmkd_ext: multi-teacher knowledge distillation for OpenMMLab 2.x.

``import mmkd_ext`` registers the models and hooks and installs the checkpoint
I/O of :mod:`mmkd_ext.utils.setup_env` (weights-only loading with an
allow-list, atomic writes). It imports neither mmdet nor mmseg: the checked
datasets (:mod:`mmkd_ext.datasets`) are imported by the ``DATASETS`` registry when a
config names one, and the dataset generators live in :mod:`mmkd_ext.synthetic_data`.
"""
from . import engine, models, utils  # noqa: F401
from .utils.setup_env import install_checkpoint_io
from .registry import DATASETS, HOOKS, MODELS, TASK_VIEWS
from .version import __version__

install_checkpoint_io()

__all__ = ['MODELS', 'HOOKS', 'DATASETS', 'TASK_VIEWS', '__version__']
