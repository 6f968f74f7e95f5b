"""Collectives shared by the hooks that train a weighting method's parameters."""
from typing import Iterable

import torch
from mmengine.dist import all_reduce, get_world_size


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks in place (no-op in a single process).

    Parameters without a gradient are skipped; every rank runs the same code path,
    so all ranks skip the same ones. After the same optimizer step, parameters
    that were identical stay identical on every rank.
    """
    if get_world_size() == 1:
        return
    for param in params:
        if param.grad is not None:
            all_reduce(param.grad, op='mean')
