"""Atomic writes for MMEngine's local files (checkpoints, ``last_checkpoint``).

MMEngine's ``LocalBackend`` opens the target and writes into it, so a crash or a
``SIGKILL`` during the write leaves a truncated checkpoint under the final name,
which ``--resume`` then fails to load. :class:`AtomicLocalBackend` writes into a
temporary file in the same directory, flushes and fsyncs it, and renames it over
the target (``os.replace`` is atomic on POSIX): the target is either the old file
or the complete new one. It is registered for local paths when mmkd_ext is imported
and writes every checkpoint. (MMEngine's ``CheckpointHook`` writes the small
``last_checkpoint`` pointer with a plain ``open``; :func:`latest_checkpoint` does not
trust it blindly.)
"""
import contextlib
import glob
import os
import os.path as osp
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend


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
        os.chmod(tmp, _NEW_FILE_MODE)  # mkstemp makes it private (0600)
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


#: The mode ``open(path, 'w')`` gives a new file: 0666 less the umask (read once, at
#: import, since reading it means setting it for a moment).
_NEW_FILE_MODE = 0o666 & ~_read_umask()


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)


#: Checkpoints MMEngine's CheckpointHook writes: ``iter_<n>.pth`` / ``epoch_<n>.pth``.
_NUMBERED = re.compile(r'(iter|epoch)_(\d+)\.pth$')


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` without a path continues from.

    The file named in ``<work_dir>/last_checkpoint`` if it is a complete
    checkpoint; otherwise (``last_checkpoint`` missing, empty, or naming a removed
    or truncated file) the complete ``iter_<n>.pth`` / ``epoch_<n>.pth`` of the
    largest ``n`` (other ``.pth`` files, e.g. ``best_*.pth`` or exported weights,
    are not candidates); None if there is none. Complete means a whole zip
    archive, the format of ``torch.save``: a truncated one lacks the directory at
    its end. Temporary files left by a write that was killed are removed.
    """
    for stale in glob.glob(osp.join(work_dir, '.*.pth.*.tmp')):
        with contextlib.suppress(FileNotFoundError):  # every rank of a launch looks
            os.unlink(stale)
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named:
            candidates.append(named)
    numbered = [(int(m.group(2)), osp.join(work_dir, name))
                for name in (os.listdir(work_dir) if osp.isdir(work_dir) else [])
                for m in [_NUMBERED.match(name)] if m]
    candidates += [path for _, path in sorted(numbered, reverse=True)]
    for path in candidates:
        if osp.isfile(path) and zipfile.is_zipfile(path):
            return path
    return None
