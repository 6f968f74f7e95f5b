"""Initialisation of data-loader worker processes for exact resumes.

:class:`~mmkd_ext.engine.hooks.RandomStateHook` installs these functions as the
``worker_init_fn`` of the run's data loaders:

- :func:`seed_train_worker` (training loader) seeds a worker's Python, NumPy and torch
  generators from ``(seed, rank, worker_id, epoch)`` at the start of every epoch, also
  in a persistent worker, so what a worker draws in an epoch does not depend on the
  epochs the same process served before, and a resumed run's new workers draw what
  an uninterrupted run's workers drew;
- :func:`exit_with_parent` (every loader) makes a worker exit as soon as the main
  process dies, also when it is killed with SIGKILL.
"""
import ctypes
import os
import random
import signal
import sys
import threading
import time
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import get_worker_info

#: ``prctl`` option that sets the signal a process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1
#: Seconds between two checks of the watchdog used where ``prctl`` is not available.
WATCHDOG_INTERVAL = 1.0


def worker_seeds(seed: int, rank: int, worker_id: int, epoch: int) -> tuple:
    """The seeds ``(python, numpy, torch)`` of a worker in an epoch: independent
    streams for every ``(seed, rank, worker_id, epoch)``, drawn with NumPy's
    ``SeedSequence``."""
    entropy = [int(v) % 2**63 for v in (seed, rank, worker_id, epoch)]
    words = np.random.SeedSequence(entropy).generate_state(4, dtype=np.uint32)
    python_seed = int(words[0]) << 32 | int(words[1])
    torch_seed = (int(words[2]) << 32 | int(words[3])) % 2**63
    return python_seed, words, torch_seed


def seed_process(seed: int, rank: int, worker_id: int, epoch: int) -> None:
    """Seed this process's Python, NumPy (legacy global) and torch generators."""
    python_seed, numpy_seed, torch_seed = worker_seeds(seed, rank, worker_id, epoch)
    random.seed(python_seed)
    np.random.seed(numpy_seed)
    torch.manual_seed(torch_seed)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def exit_with_parent(parent_pid: int) -> None:
    """Make this process exit when the process ``parent_pid`` (the main process) dies.

    When that process is this one's parent (workers forked by the main process), on
    Linux the kernel sends SIGKILL on its death (``prctl`` with ``PR_SET_PDEATHSIG``,
    set from the thread that starts the workers, the main thread in MMEngine's
    loops). Otherwise (another system, or a worker started by a ``forkserver``,
    whose parent is the fork server) a daemon thread checks every
    :data:`WATCHDOG_INTERVAL` seconds that the main process still runs. A main
    process that died before this call is caught by the check that follows it.
    """
    direct = os.getppid() == parent_pid
    armed = False
    if direct and sys.platform.startswith('linux'):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False

    def main_process_gone() -> bool:
        return (direct and os.getppid() != parent_pid) or not _alive(parent_pid)

    if not armed:
        def watch():
            while not main_process_gone():
                time.sleep(WATCHDOG_INTERVAL)
            os._exit(1)
        threading.Thread(target=watch, name='exit-with-parent', daemon=True).start()
    if main_process_gone():  # it died before the signal was armed
        os._exit(1)


def init_eval_worker(worker_id: int, parent_pid: int,
                     chained: Optional[Callable] = None) -> None:
    """``worker_init_fn`` of a validation or test loader: exit with the main process,
    then the loader's own initialisation (MMEngine's seeding by default)."""
    exit_with_parent(parent_pid)
    if chained is not None:
        chained(worker_id)


def seed_train_worker(worker_id: int, seed: int, rank: int, parent_pid: int,
                      epoch: torch.Tensor, chained: Optional[Callable] = None) -> None:
    """``worker_init_fn`` of the training loader.

    Exits with the main process, seeds the worker for the current epoch (read from
    ``epoch``, a one-element tensor in shared memory that the main process sets
    before each epoch's iterator starts) and makes the worker seed itself again at
    the first batch of each later epoch (a persistent worker serves several): the
    dataset's ``__getitems__`` (what torch's fetcher calls for a batch) is wrapped
    in the worker's copy of the dataset. ``chained``, a user's own
    ``worker_init_fn``, runs last.
    """
    exit_with_parent(parent_pid)
    current = {'epoch': int(epoch.item())}
    seed_process(seed, rank, worker_id, current['epoch'])
    info = get_worker_info()
    dataset = info.dataset if info is not None else None
    if dataset is not None:
        fetch_batch = getattr(dataset, '__getitems__', None)

        def getitems(indices):
            now = int(epoch.item())
            if now != current['epoch']:
                current['epoch'] = now
                seed_process(seed, rank, worker_id, now)
            if fetch_batch is not None:
                return fetch_batch(indices)
            return [dataset[i] for i in indices]

        try:
            dataset.__getitems__ = getitems
        except AttributeError:  # a dataset that takes no attributes: seeded per process
            pass
    if chained is not None:
        chained(worker_id)
