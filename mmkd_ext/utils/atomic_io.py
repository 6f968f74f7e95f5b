"""Atomic writes for MMEngine's local files (checkpoints, ``last_checkpoint``).

MMEngine's ``LocalBackend`` opens the target and writes into it, so a crash or a
``SIGKILL`` during the write leaves a truncated checkpoint under the final name,
which ``--resume`` then fails to load. :class:`AtomicLocalBackend` writes into a
temporary file in the same directory, flushes and fsyncs it, and renames it over
the target (``os.replace`` is atomic on POSIX and Windows): the target is either
the old file or the complete new one. It is registered for local paths when
mmkd_ext is imported.
"""
import os
import os.path as osp
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend, register_backend


def atomic_write(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that no partial file is ever visible."""
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(filepath)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())  # mkstemp makes it private (0600)
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def _default_file_mode() -> int:
    """The mode ``open(path, 'w')`` would give a new file: 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)


register_backend('local', AtomicLocalBackend, force=True, prefixes='')


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` without a path continues from.

    The file named in ``<work_dir>/last_checkpoint`` if it is a complete
    checkpoint; otherwise (``last_checkpoint`` missing, empty, or naming a removed
    or truncated file) the newest complete ``*.pth`` in ``work_dir``; None if there
    is none. Complete means a whole zip archive, the format of ``torch.save``: a
    truncated one lacks the directory at its end.
    """
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named:
            candidates.append(named)
    if osp.isdir(work_dir):
        found = [osp.join(work_dir, n) for n in os.listdir(work_dir) if n.endswith('.pth')]
        candidates += sorted(found, key=osp.getmtime, reverse=True)
    for path in candidates:
        if osp.isfile(path) and zipfile.is_zipfile(path):
            return path
    return None
