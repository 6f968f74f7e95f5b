"""Weights-only checkpoint loading with an explicit allow-list.

Since torch 2.6, ``torch.load`` unpickles weights-only by default and refuses the
Python objects MMEngine stores in its checkpoints (the message hub's
``HistoryBuffer``, numpy scalars). Instead of switching weights-only off, which lets
a checkpoint run arbitrary code, mmkd_ext replaces MMEngine's local-file loader by
one that allows exactly those classes. Any other object makes the load fail with
:class:`UnsafeCheckpointError`.
"""
import os.path as osp
import pickle
from typing import List, Tuple

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds an object outside the allow-list."""


def _numpy_globals() -> List:
    """numpy reconstructors and dtype classes that appear in pickled arrays/scalars."""
    try:
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in (
        np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
        np.int64, np.uint8, np.bool_)]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


#: HistoryBuffer methods that MMEngine pickles (by ``getattr(HistoryBuffer, name)``).
_HISTORY_BUFFER_METHODS = frozenset({'min', 'max', 'current', 'mean'})


def _restricted_getattr(obj, name: str):
    """Stand-in for ``builtins.getattr`` while unpickling a checkpoint.

    ``HistoryBuffer.__getstate__`` stores its statistics methods, which pickle as
    ``getattr(HistoryBuffer, 'mean')``. A real ``getattr`` would let a crafted file
    walk from any allowed object to arbitrary code, so only those lookups resolve.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) is not allowed')


#: Every non-tensor global a checkpoint written by MMEngine's runner may hold.
ALLOWED_CHECKPOINT_GLOBALS = [
    HistoryBuffer, (_restricted_getattr, 'builtins.getattr'), *_numpy_globals()
]


def safe_torch_load(filename: str, map_location=None):
    """``torch.load`` with ``weights_only=True`` and the allow-list above.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file holds an object that is not allowed.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint not found: {filename}')
    with torch.serialization.safe_globals(ALLOWED_CHECKPOINT_GLOBALS):
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError) as err:
            if isinstance(err, RuntimeError) and 'Weights only load failed' not in str(err):
                raise
            raise UnsafeCheckpointError(
                f'Refusing to load {filename}: it holds a Python object outside '
                'the allow-list of mmkd_ext.utils.checkpoint '
                f'(ALLOWED_CHECKPOINT_GLOBALS). torch said: {err}. If you trust '
                'this file, convert it to a plain state dict first.') from err


def load_from_local(filename: str, map_location=None):
    """MMEngine's loader for local paths, made weights-only (see module doc)."""
    return safe_torch_load(filename, map_location)


def model_state_dict(checkpoint: dict) -> Tuple[dict, bool]:
    """The model weights of a loaded checkpoint, and whether it was a distiller's.

    Unwraps MMEngine's ``state_dict`` entry and DDP's ``module.`` prefix; for a
    distiller checkpoint keeps only the ``student.`` weights, prefix removed.
    """
    state = checkpoint.get('state_dict', checkpoint)
    if any(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items() if k.startswith('module.')}
    from_distiller = any(k.startswith('student.') for k in state)
    if from_distiller:
        state = {k[len('student.'):]: v for k, v in state.items() if k.startswith('student.')}
    return state, from_distiller


def load_model_weights(model, path: str, owner: str) -> None:
    """Load a checkpoint into ``model``, requiring every key and shape to fit.

    Accepts MMEngine checkpoints (``state_dict`` inside), plain state dicts, DDP
    (``module.``) keys, and a distilled checkpoint's student (``student.`` keys).

    Raises:
        FileNotFoundError: ``path`` is a local path that does not exist.
        KeyError: the keys or shapes do not fit the model; the message names
            ``owner`` and lists examples of each mismatch.
    """
    if not path:
        raise ValueError(f'{owner}: no checkpoint given; set `checkpoint=` to the '
                         'file of its trained weights.')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except FileNotFoundError as err:
        raise FileNotFoundError(f'{owner}: checkpoint not found: {path}') from err
    state, _ = model_state_dict(checkpoint)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}'
                  for k, v in own.items()
                  if k in state and hasattr(state[k], 'shape') and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        raise KeyError(
            f'{owner}: checkpoint {path} does not fit the model built from its '
            f'config: {len(missing)} missing keys {missing[:3]}, {len(unexpected)} '
            f'unexpected keys {unexpected[:3]}, {len(mismatched)} shape mismatches '
            f'{mismatched[:3]}. Is it the checkpoint of another architecture?')
    model.load_state_dict(state, strict=True)
