"""The two changes ``import mmkd_ext`` makes to MMEngine's file handling.

:func:`install_checkpoint_io` is called once by ``mmkd_ext/__init__.py``; it is
idempotent. It replaces, for local paths:

- MMEngine's checkpoint loader (``CheckpointLoader``, used by ``load_from``,
  ``--resume`` and ``load_checkpoint``) by :func:`~mmkd_ext.utils.checkpoint.load_from_local`:
  ``torch.load`` weights-only with the allow-list of the objects MMEngine stores
  (``ALLOWED_CHECKPOINT_GLOBALS``); any other object is refused with
  :class:`~mmkd_ext.utils.checkpoint.UnsafeCheckpointError`;
- MMEngine's local file backend (``put``/``put_text``, used by the checkpoint hook
  and ``last_checkpoint``) by :class:`~mmkd_ext.utils.atomic_io.AtomicLocalBackend`:
  every file is written to a temporary file, synced and renamed, so a process
  killed during a write leaves the previous file intact.
"""
from mmengine.fileio import register_backend
from mmengine.runner.checkpoint import CheckpointLoader

from .atomic_io import AtomicLocalBackend
from .checkpoint import load_from_local


def install_checkpoint_io() -> None:
    """Register the weights-only local checkpoint loader and the atomic local file
    backend in MMEngine (both for paths without a ``scheme://`` prefix)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
