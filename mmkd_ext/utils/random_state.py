"""This process's random generators: their state as checkpoint-safe values, and
seeding (used by the hooks and by look-ahead passes that must replay draws)."""
import logging
import random

import numpy as np
import torch
from mmengine.logging import print_log


def capture_random_state() -> dict:
    """This process's Python, NumPy (legacy global) and torch (CPU, and the current
    CUDA device's when CUDA is initialised) generator states, as tensors and plain
    numbers (what a weights-only checkpoint load accepts). The current device's
    only: in a distributed run each rank draws on its own device, and every rank
    restores rank 0's state onto its own device."""
    version, words, gauss_next = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = dict(
        python=dict(version=version, state=torch.tensor(words, dtype=torch.int64),
                    gauss_next=gauss_next),
        numpy=dict(name=str(name), key=torch.from_numpy(key.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def restore_random_state(state: dict) -> None:
    """Set this process's generators to a :func:`capture_random_state` result."""
    python = state['python']
    random.setstate((python['version'], tuple(int(w) for w in python['state'].tolist()),
                     python['gauss_next']))
    numpy = state['numpy']
    np.random.set_state((numpy['name'], numpy['key'].numpy().astype(np.uint32), numpy['pos'],
                         numpy['has_gauss'], numpy['cached_gaussian']))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu())
    elif cuda is not None:
        print_log('RandomStateHook: the checkpoint holds a CUDA random state but CUDA is '
                  'not available; GPU draws restart from the seed.', logger='current',
                  level=logging.WARNING)


def seed_host_generators(seed: int) -> None:
    """Seed this process's Python, NumPy (legacy global) and torch CPU generators
    from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


def seed_everything(seed: int) -> None:
    """:func:`seed_host_generators` and every CUDA device's generator, as MMEngine's
    ``set_random_seed`` does when the runner is built."""
    seed_host_generators(seed)
    torch.cuda.manual_seed_all(seed)
