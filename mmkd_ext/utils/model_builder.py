"""Build OpenMMLab models from an inline dict, a local config file or a ``pkg::`` path.

Each model is built inside its own library's registry scope, so an mmdet, mmseg and
mmpretrain model can live in one process (and one distiller) side by side.
"""
import copy
import difflib
import importlib
import importlib.util
import os
import os.path as osp
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

#: Libraries whose model registries are searched when a model dict names no scope.
KNOWN_SCOPES = ('mmpretrain', 'mmdet', 'mmseg')

ModelSpec = Union[str, dict, ConfigDict]


def resolve_config_path(path: str) -> str:
    """Turn ``'mmdet::retinanet/x.py'`` or a local path into an existing file path.

    Raises:
        FileNotFoundError: with the closest existing names when the file is absent.
    """
    if '::' not in path:
        if not osp.isfile(path):
            raise FileNotFoundError(f'Config file not found: {path!r}.')
        return path
    package, rel_path = path.split('::', 1)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f'Config {path!r}: package {package!r} is not installed.')
    config_root = osp.join(osp.dirname(spec.origin), '.mim', 'configs')
    full_path = osp.join(config_root, rel_path)
    if not osp.isfile(full_path):
        folder = osp.dirname(full_path)
        candidates = []
        if osp.isdir(folder):
            candidates = [
                osp.join(osp.dirname(rel_path), name) for name in os.listdir(folder)
            ]
        close = difflib.get_close_matches(rel_path, candidates, n=5, cutoff=0.4)
        hint = f' Close names: {close}.' if close else ''
        raise FileNotFoundError(
            f'Config {path!r} does not exist in {package} (looked in '
            f'{config_root}).{hint}')
    return full_path


def load_model_config(spec: ModelSpec) -> Tuple[ConfigDict, Optional[str]]:
    """Return ``(model_cfg, scope)`` for an inline model dict or a config path.

    For a config file, the file's top-level ``data_preprocessor`` is merged into the
    model dict (as MMEngine's runner does) and its ``default_scope`` is the scope.
    """
    if isinstance(spec, str):
        cfg = Config.fromfile(resolve_config_path(spec))
        if 'model' not in cfg:
            raise KeyError(f'Config {spec!r} has no `model` field.')
        model_cfg = copy.deepcopy(cfg.model)
        if cfg.get('data_preprocessor') is not None:
            model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
        scope = model_cfg.pop('_scope_', None) or cfg.get('default_scope')
        return ConfigDict(model_cfg), scope
    if isinstance(spec, dict):
        model_cfg = ConfigDict(copy.deepcopy(dict(spec)))
        if 'type' not in model_cfg:
            raise KeyError(
                f'A model dict needs a `type` (got keys {sorted(model_cfg)}); to '
                'give a config file instead, pass its path as a string.')
        return model_cfg, model_cfg.pop('_scope_', None)
    raise TypeError(
        f'A model is given as a dict or a config path, not {type(spec).__name__}.')


def infer_scope(model_type) -> str:
    """Find the library that registers ``model_type`` ('mmdet.RetinaNet' or 'RetinaNet')."""
    if not isinstance(model_type, str):
        raise TypeError('Cannot infer the scope of a model given as a class; '
                        'add `_scope_` to its dict.')
    if '.' in model_type:
        return model_type.split('.', 1)[0]
    found = []
    for scope in KNOWN_SCOPES:
        if importlib.util.find_spec(scope) is None:
            continue
        registry = ROOT_MODELS._get_root_registry()._search_child(scope)
        if registry is None:
            importlib.import_module(f'{scope}.registry')
            registry = ROOT_MODELS._get_root_registry()._search_child(scope)
        registry.import_from_location()
        if model_type in registry.module_dict:
            found.append(scope)
    if len(found) != 1:
        what = 'no installed library' if not found else f'several libraries ({found})'
        raise KeyError(
            f'Model type {model_type!r} is registered by {what}; name the library '
            f"with `_scope_='mmdet'` (or 'mmseg', 'mmpretrain') in the model dict.")
    return found[0]


def build_model(spec: ModelSpec,
                default_preprocessor: Optional[dict] = None,
                cfg_options: Optional[dict] = None) -> Tuple[nn.Module, str]:
    """Build a model in its own library's scope.

    Args:
        spec: an inline model dict, a local config path or ``'pkg::rel/path.py'``.
        default_preprocessor: ``data_preprocessor`` for a model whose config has
            none (e.g. an inline dict inside a config whose top level defines it).
        cfg_options: overrides merged into the model config, keys relative to it
            (``{'backbone.init_cfg': None}``), as ``--cfg-options`` does.

    Returns:
        ``(model, scope)``.
    """
    model_cfg, scope = load_model_config(spec)
    if cfg_options:
        merged = Config(dict(model=model_cfg))
        merged.merge_from_dict({f'model.{k}': v for k, v in cfg_options.items()})
        model_cfg = merged.model
    if default_preprocessor is not None and model_cfg.get('data_preprocessor') is None:
        model_cfg['data_preprocessor'] = copy.deepcopy(default_preprocessor)
    scope = scope or infer_scope(model_cfg['type'])
    importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        model_cfg['_scope_'] = scope
        model = ROOT_MODELS.build(model_cfg)
    return model, scope


def save_initialised_checkpoint(spec: ModelSpec, path: str) -> str:
    """Build ``spec``, run its ``init_weights()`` and save ``{'state_dict': ...}`` at
    ``path`` (stand-in weights of an architecture, e.g. for timing); returns the path."""
    model, _ = build_model(spec)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict()), path)
    return str(path)
