"""Registries of mmkd_ext.

Each registry is a child of MMEngine's root registry of the same kind, so a config
can name ``mmkd_ext.MultiTeacherDistiller`` from any default scope, and with
``default_scope='mmkd_ext'`` the ``locations`` below are imported on first use
(no ``custom_imports`` needed). ``import mmkd_ext`` imports the models and hooks;
the datasets (which import mmdet and mmseg) are imported by the first lookup of
``DATASETS``, e.g. of ``mmkd_ext.CheckedCocoDataset`` from a config.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

#: Distillers, weighting methods, feature adapters and KD losses (all ``nn.Module``).
MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmkd_ext',
    locations=['mmkd_ext.models'])

#: Training hooks (teacher-weight logging, meta / agent updates).
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmkd_ext', locations=['mmkd_ext.engine.hooks'])

#: Datasets (checked variants of the libraries' datasets).
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='mmkd_ext', locations=['mmkd_ext.datasets'])

#: Task views: what "logits", "KD term", "teacher loss" and "features" mean per task.
TASK_VIEWS = Registry(
    'task view', scope='mmkd_ext', locations=['mmkd_ext.models.task_views'])
