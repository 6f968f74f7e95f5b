"""RandomStateHook: the random state that decides the data survives a resume."""
import logging
import os
import weakref
from functools import partial
from typing import Optional

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.utils.data import DataLoader

from mmkd_ext.registry import HOOKS
from mmkd_ext.utils.random_state import (capture_random_state, restore_random_state,
                                         seed_everything)
from .worker_init import init_eval_worker, seed_train_worker


class _RestoreAfterSkipping:
    """Stands in for an iteration-based loop's data iterator on a resume: passes the
    ``skip`` batches MMEngine fetches to skip the iterations already trained, then
    calls ``restore`` and puts the loop's own iterator back before the next batch."""

    def __init__(self, loop, skip: int, restore):
        self._loop, self._inner = loop, loop.dataloader_iterator
        self._skip, self._restore = skip, restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return next(self._inner)
        self._restore()
        self._loop.dataloader_iterator = self._inner
        return next(self._inner)

    def __getattr__(self, name):  # the loop's iterator's own attributes
        inner = self.__dict__.get('_inner')
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Keep the random state that decides the data (crops, flips, any draw of the
    pipeline or the model) across a checkpoint, so that a resumed run continues as
    an uninterrupted one.

    MMEngine seeds the main process once, when the runner is built, and a resumed
    run is seeded again from the start; data-loader workers are seeded from
    ``seed + worker_id`` when they start, and persistent workers carry their
    generators from epoch to epoch. A resumed run therefore draws other
    augmentations than the uninterrupted run from the first resumed epoch on. This
    hook:

    - saves the main process's Python, NumPy and torch (and CUDA) generator states in
      every checkpoint (under ``random_state``; rank 0's in a multi-process run, from
      which every rank resumes) and, on
      ``--resume``, restores them where the uninterrupted run continued: before the
      first resumed epoch (epoch-based loops), or after MMEngine's iteration-based
      loop has fetched the batches it skips (those already trained), before it
      fetches the batch of the first resumed iteration;
    - lets validation leave those states as they were: they are captured before
      validation and restored after it, so validating (or not, or how often) does not
      change the training's draws;
    - seeds each training data-loader worker from ``(seed, rank, worker_id, epoch)``
      at the start of every epoch (persistent workers too, see
      :mod:`~mmkd_ext.engine.hooks.worker_init`), replacing MMEngine's
      ``seed + worker_id`` seeding; a ``worker_init_fn`` of the config's own runs
      after it;
    - makes every data-loader worker (training, validation, test) exit when the
      main process dies, also from SIGKILL;
    - gives every data loader a private ``generator``, so starting an iterator (which
      draws the workers' base seed) does not draw from the global torch generator;
    - seeds the main process's generators again from the run's seed right before
      MMEngine initialises the model's weights (``before_run``), so that whatever a
      config built before (teachers, adapters, weight networks, the distiller's
      build-time probe) drew from them, one seed gives one student initialisation:
      the student alone and the student of every distillation config start from the
      same weights, as the distiller initialises its student first. With the sampler
      seeded from the run's seed and the workers' per-epoch seeding, runs of one seed
      also share their data order and the data pipeline's augmentation. What draws
      from the main process's generators during training (augmentation with
      ``num_workers=0``, batch augmentations such as Mixup, dropout) is shared only as
      long as the configs draw alike: a method's extra passes (MMKD's quiz batches)
      move those draws.

    The shared runtime (``configs/_base_/default_runtime.py``) adds it to
    ``default_hooks`` as ``random_state``.

    Exact only for a checkpoint written at an epoch's end in an epoch-based loop
    (MMEngine restarts an epoch from its first batch) and at any checkpoint in an
    iteration-based loop. In an iteration-based loop the epoch the workers are seeded
    from stays 0 (MMEngine's loop is one long epoch).
    """
    priority = 'VERY_HIGH'  # restore before any other hook draws at the resume point
    checkpoint_key = 'random_state'

    def __init__(self):
        self._resumed: Optional[dict] = None  # from after_load_checkpoint
        self._pending: Optional[dict] = None  # to restore at the resume point
        self._before_val: Optional[dict] = None
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._configured = weakref.WeakSet()  # the loaders given a worker_init_fn

    # -- data-loader workers ------------------------------------------------------------

    def _configure_loader(self, runner, loader, train: bool) -> None:
        if not isinstance(loader, DataLoader) or loader in self._configured:
            return
        self._configured.add(loader)
        # Starting an iterator draws the workers' base seed (which the seeding below
        # replaces) from the loader's generator, by default the global torch one, at
        # every epoch without persistent workers but only once with them: a private
        # generator keeps that draw out of the streams a resume must continue.
        loader.generator = torch.Generator().manual_seed(runner.seed % 2**63 + get_rank())
        previous = loader.worker_init_fn
        if train:
            if isinstance(previous, partial) and previous.func is mmengine_worker_init_fn:
                previous = None  # replaced by the per-epoch seeding
            loader.worker_init_fn = partial(
                seed_train_worker, seed=runner.seed, rank=get_rank(), parent_pid=os.getpid(),
                epoch=self._epoch, chained=previous)
        else:
            loader.worker_init_fn = partial(init_eval_worker, parent_pid=os.getpid(),
                                            chained=previous)

    def _eval_loader(self, runner, name: str) -> None:
        loop = getattr(runner, f'_{name}_loop', None)
        if loop is not None and not isinstance(loop, dict):
            self._configure_loader(runner, getattr(loop, 'dataloader', None), train=False)

    # -- training -------------------------------------------------------------------------

    def before_run(self, runner) -> None:
        seed_everything(runner.seed)

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        self._configure_loader(runner, loop.dataloader, train=True)
        if isinstance(loop, IterBasedTrainLoop):
            self._restart_workers(loop)
        self._eval_loader(runner, 'val')
        if runner.iter > 0 and self._resumed is not None:
            self._pending = self._resumed
        elif runner.iter > 0:
            print_log('RandomStateHook: the resumed checkpoint has no '
                      f'{self.checkpoint_key!r}; the random streams restart from the seed, '
                      'so the run departs from an uninterrupted one.',
                      logger='current', level=logging.WARNING)
        self._resumed = None

    @staticmethod
    def _restart_workers(loop: IterBasedTrainLoop) -> None:
        """Start an iteration-based loop's data iterator again. MMEngine's loop starts
        it (and its workers, with the loader's ``worker_init_fn`` of that moment) when
        it is built, before any hook runs; the new iterator's workers run the
        initialisation set here. Nothing was fetched from the first one."""
        loader = loop.dataloader
        if not isinstance(loader, DataLoader) or loader.num_workers == 0:
            return
        stale = [getattr(loop.dataloader_iterator, '_iterator', None),
                 getattr(loader, '_iterator', None)]  # a persistent loader keeps its own
        loader._iterator = None
        for iterator in stale:
            if hasattr(iterator, '_shutdown_workers'):
                iterator._shutdown_workers()
        # MMEngine's InfiniteSampler hands every iterator of the loader one shared
        # generator of indices (``sampler.indices``). The stale iterator's batch sampler
        # is suspended inside it, and closing that (when the stale iterator is
        # collected) closes the shared generator: the new iterator would get no index
        # and the loop would stop with StopIteration. A fresh generator starts the
        # indices from the beginning, as if the first iterator had never run.
        sampler = getattr(loader, 'sampler', None)
        if isinstance(sampler, InfiniteSampler):
            sampler.indices = sampler._indices_of_rank()
        loop.dataloader_iterator = _InfiniteDataloaderIterator(loader)

    def before_train_epoch(self, runner) -> None:
        self._epoch.fill_(runner.epoch)
        loop = runner.train_loop
        if self._pending is not None and isinstance(loop, IterBasedTrainLoop):
            # The loop now fetches (and drops) the batches already trained: restore
            # after those, right before the batch of the first resumed iteration.
            loop.dataloader_iterator = _RestoreAfterSkipping(
                loop, skip=loop.iter, restore=self._restore_pending)
        else:
            self._restore_pending()

    def _restore_pending(self) -> None:
        if self._pending is not None:
            restore_random_state(self._pending)
            self._pending = None

    # -- validation -----------------------------------------------------------------------

    def before_val(self, runner) -> None:
        self._eval_loader(runner, 'val')
        self._before_val = capture_random_state()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._before_val is not None:  # before the best checkpoint is saved
            restore_random_state(self._before_val)

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_random_state(self._before_val)
            self._before_val = None

    def before_test(self, runner) -> None:
        self._eval_loader(runner, 'test')

    # -- checkpoints ----------------------------------------------------------------------

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Rank 0 writes the checkpoint: its state is the one saved (no collective
        # here, so saving never waits on the other ranks).
        checkpoint[self.checkpoint_key] = dict(world_size=get_world_size(),
                                               ranks=[capture_random_state()])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get(self.checkpoint_key)
        self._resumed = None if saved is None else saved['ranks'][0]
