"""Collectives shared by the hooks that train a weighting method's parameters."""
from typing import Iterable

import torch
from mmengine.dist import all_gather, all_reduce, all_reduce_params, get_world_size


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks in place, in one coalesced collective (no-op in
    a single process).

    Parameters without a gradient are skipped; every rank runs the same code path,
    so all ranks skip the same ones. After the same optimizer step, parameters
    that were identical stay identical on every rank.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if get_world_size() > 1 and grads:
        all_reduce_params(grads, coalesce=True, op='mean')


def fill_missing_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Give a zero ``.grad`` to each parameter that has none on this rank but has one
    on another (a no-op in a single process), so that every rank then averages the
    same list; a parameter without a gradient on every rank keeps none, as in a
    single process. One collective."""
    params = list(params)
    if get_world_size() == 1 or not params:
        return
    has = torch.tensor([float(p.grad is not None) for p in params],
                       device=params[0].device)
    all_reduce(has, op='max')
    for param, flag in zip(params, has.tolist()):
        if flag and param.grad is None:
            param.grad = torch.zeros_like(param)


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (``[N_r, ...]``, ``N_r`` may differ by rank, e.g. at a
    last smaller batch) over ranks along dim 0 in rank order, on its own device;
    itself in a single process. Two collectives: the sizes, then the padded rows."""
    if get_world_size() == 1:
        return tensor
    sizes = [int(n) for n in all_gather(torch.tensor([len(tensor)], device=tensor.device))]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[:len(tensor)] = tensor
    return torch.cat([rows[:n].to(tensor.device)
                      for rows, n in zip(all_gather(padded), sizes)])
