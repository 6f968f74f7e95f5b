"""Collectives shared by the hooks that train a weighting method's parameters."""
from typing import Iterable

import torch
from mmengine.dist import all_gather, all_reduce_params, get_world_size


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
