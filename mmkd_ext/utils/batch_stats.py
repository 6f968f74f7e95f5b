"""Evaluate a model whose BatchNorm layers normalise with each batch's own statistics.

Why: in eval mode a BatchNorm layer normalises with its running statistics, the
exponential average of the batch statistics seen in training. When the weights
move faster than that average follows, or when training fed the layer batches
unlike those of plain inference, the running statistics stop fitting the weights.
Comparing the usual score with the score under batch statistics measures that:
a student whose batch-statistics score is much higher than its running-statistics
score ends training with running statistics that do not fit its weights (the
weights themselves are good; their normalisation is not).

The batch-statistics score depends on the test batch size and on the batch
composition, so compare the two scores of one run rather than batch-statistics
scores across settings. Test dataloaders do not shuffle, and a test set is often
stored by class (a folder per class): its batches then hold one or two classes,
whose statistics are not the data's. The batch-statistics pass therefore draws
its batches in a seeded random order (:func:`shuffled_loader`).

The remedy, :func:`reestimate_batch_norm_statistics`, recomputes the running
statistics from the final weights on training batches.
"""
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, List

import torch
import torch.nn as nn
from mmengine.dataset import DefaultSampler
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader
from torch.nn.modules.batchnorm import _BatchNorm

#: The prefix of the batch-statistics metrics beside the usual ones.
BATCH_STATS_PREFIX = 'bn_batch_stats/'


def evaluated_model(model: nn.Module) -> nn.Module:
    """The network that a runner's model evaluates: the student of a distiller
    (which runs no teacher at test time), else the (unwrapped) model itself."""
    if is_model_wrapper(model):
        model = model.module
    return getattr(model, 'student', model)


def batch_norm_layers(model: nn.Module) -> List[_BatchNorm]:
    """Every BatchNorm layer of ``model`` (any ``_BatchNorm``, SyncBN included)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def _pinned_train(module: nn.Module):
    """A ``train`` for one BN layer that keeps it in training mode: so that the
    ``model.eval()`` of a test loop run inside :func:`batch_statistics` leaves it
    normalising with batch statistics."""
    def train(mode: bool = True) -> nn.Module:
        module.training = True
        return module
    return train


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[List[_BatchNorm]]:
    """Within the block every BatchNorm layer of ``model`` normalises with the
    statistics of the batch it receives; the rest of the model keeps its mode.

    The layers are put in training mode with momentum 0 (their running statistics
    do not move; ``num_batches_tracked`` counts on until the exit) and stay there
    through ``model.eval()`` / ``model.train()`` calls made within the block; on exit
    their mode, momentum, ``train`` method and buffers (``running_mean``,
    ``running_var``, ``num_batches_tracked``) are restored exactly. Yields the layers (an empty list for a model without BN).
    """
    layers = batch_norm_layers(model)
    saved = [(m.training, m.momentum, {name: buf.clone() for name, buf in m.named_buffers(
        recurse=False) if buf is not None}) for m in layers]
    try:
        for m in layers:
            m.momentum = 0.0
            m.training = True
            m.train = _pinned_train(m)  # an instance attribute shadows Module.train
        yield layers
    finally:
        for m, (training, momentum, buffers) in zip(layers, saved):
            del m.train
            m.training = training
            m.momentum = momentum
            for name, value in buffers.items():
                getattr(m, name).copy_(value)


def shuffled_loader(loader: DataLoader, seed: int = 0) -> DataLoader:
    """``loader`` (its dataset, batch size, collate function and workers) drawing
    its samples in a random order fixed by ``seed``, split over ranks like MMEngine's
    ``DefaultSampler`` (which it uses, with ``shuffle=True``; every rank gets as many
    batches, the metrics drop the padding), so every batch is a random draw of the
    set. A loader with a batch sampler (mmdet's aspect-ratio one) is given the same
    batch size. Its metrics equal ``loader``'s wherever they do not depend on the
    order (accuracy, COCO mAP, mIoU)."""
    batch_size = loader.batch_size or getattr(loader.batch_sampler, 'batch_size', 1)
    return DataLoader(loader.dataset, batch_size=batch_size,
                      sampler=DefaultSampler(loader.dataset, shuffle=True, seed=seed),
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn,
                      drop_last=False)


def prefixed(metrics: dict, prefix: str = BATCH_STATS_PREFIX) -> dict:
    """``metrics`` with every key prefixed."""
    return {prefix + k: v for k, v in metrics.items()}


def format_comparison(running: dict, batch: dict) -> str:
    """One line: each metric under running statistics, under batch statistics, and
    the difference (batch minus running)."""
    parts = []
    for key, value in running.items():
        if key in batch:
            parts.append(f'{key} {value:.2f} -> {batch[key]:.2f} '
                         f'({batch[key] - value:+.2f})')
    return 'BN running -> batch statistics: ' + ('; '.join(parts) or 'no common metric')


@torch.no_grad()
def reestimate_batch_norm_statistics(model: nn.Module, batches: Iterable,
                                     forward: Callable[[torch.Tensor], object]) -> int:
    """Replace the running statistics of ``model``'s BN layers by the statistics of
    its current weights on ``batches`` ("precise BN"): each layer's running mean and
    variance become the plain average over the batches of the batch means and
    (unbiased) variances, instead of an exponential average of statistics taken with
    earlier weights. Parameters, momenta and modes are left as they were; in
    distributed runs the averages are averaged over ranks.

    Only the layers that train keep new statistics: a layer that ``model.train()``
    leaves in eval mode (mmdet/mmseg backbones with ``norm_eval=True``, frozen stages)
    or that the ``forward`` does not reach (e.g. an auxiliary head outside
    ``mode='tensor'``) keeps its statistics exactly.

    Args:
        batches: the batches, each run through ``forward`` (e.g. the student's
            ``forward(x, mode='tensor')``) with ``model`` in training mode.

    Returns:
        The number of batches used (0: the statistics are unchanged).
    """
    layers = [m for m in batch_norm_layers(model) if m.track_running_stats]
    if not layers:
        return 0
    saved = {m: (m.momentum, m.running_mean.clone(), m.running_var.clone(),
                 m.num_batches_tracked.clone()) for m in layers}
    training = {m: m.training for m in model.modules()}
    seen = {m: 0 for m in layers}

    def count_batch(module, args):
        if module.training:
            seen[module] += 1

    handles = [m.register_forward_pre_hook(count_batch) for m in layers]
    count = 0
    try:
        model.train()
        for m in layers:
            if m.training:  # norm_eval / frozen layers stay as they are
                m.reset_running_stats()
                m.momentum = None  # cumulative average
        for inputs in batches:
            forward(inputs)
            count += 1
    finally:
        for handle in handles:
            handle.remove()
        for m, (momentum, mean, var, tracked) in saved.items():
            m.momentum = momentum
            if not seen[m]:  # not re-estimated: its statistics exactly as they were
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(tracked)
        for m, mode in training.items():
            m.training = mode
    if count and get_world_size() > 1:
        for m in layers:
            if seen[m]:
                all_reduce(m.running_mean, op='mean')
                all_reduce(m.running_var, op='mean')
    return count
