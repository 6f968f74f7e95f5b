"""The hard buffer's samples as the training steps saw them, for MMKD's quiz batches."""
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.structures import BaseDataElement


def split_rows(tree: Any, batch_size: int,
               rows: Optional[Sequence[int]] = None) -> List[Any]:
    """Per row of ``rows`` (all ``batch_size`` by default), a copy of a nested
    list/tuple/dict of batch-first tensors holding that row of every tensor (cloned,
    so that a row does not keep its batch's storage alive). Non-tensor leaves are
    shared.

    Raises:
        ValueError: a tensor's first dimension is not ``batch_size``.
    """
    check_batch_first(tree, batch_size)
    return [_row(tree, row) for row in (range(batch_size) if rows is None else rows)]


def _row(tree: Any, row: int) -> Any:
    if isinstance(tree, (list, tuple)):
        return type(tree)(_row(v, row) for v in tree)
    if isinstance(tree, dict):
        return {k: _row(v, row) for k, v in tree.items()}
    if isinstance(tree, torch.Tensor):
        return tree[row].clone()
    return tree


def stack_rows(rows: Sequence[Any]) -> Any:
    """The inverse of :func:`split_rows`: rows stacked into batch-first tensors."""
    first = rows[0]
    if isinstance(first, (list, tuple)):
        return type(first)(stack_rows([r[i] for r in rows]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: stack_rows([r[k] for r in rows]) for k in first}
    if isinstance(first, torch.Tensor):
        return torch.stack(list(rows))
    return first


def check_batch_first(tree: Any, batch_size: int) -> None:
    """Raise ValueError unless every tensor of a nested list/tuple/dict has
    ``batch_size`` rows."""
    if isinstance(tree, (list, tuple)):
        for value in tree:
            check_batch_first(value, batch_size)
    elif isinstance(tree, dict):
        for value in tree.values():
            check_batch_first(value, batch_size)
    elif isinstance(tree, torch.Tensor) and (tree.dim() == 0 or tree.shape[0] != batch_size):
        raise ValueError(f'a tensor of shape {tuple(tree.shape)} is not batch-first '
                         f'(batch of {batch_size})')


def compact_sample(sample: BaseDataElement) -> Tuple[BaseDataElement, int]:
    """A copy of a data sample whose tensors and arrays own their memory (a field that
    is a view of a batch tensor, e.g. the mixed label Mixup sets, would keep the whole
    batch alive), and the bytes they take; anything else is kept as it is (0 bytes)."""
    if not isinstance(sample, BaseDataElement):
        return sample, 0
    copy_ = sample.clone()
    size = 0
    for key, value in sample.items():
        if isinstance(value, BaseDataElement):
            value, nested = compact_sample(value)
            size += nested
        elif isinstance(value, torch.Tensor):
            value = value.detach().clone()
            size += value.numel() * value.element_size()
        elif isinstance(value, np.ndarray):
            value = value.copy()
            size += value.nbytes
        else:  # e.g. mmdet's boxes and masks: per-sample objects, shared and counted
            size += _object_bytes(value)
            continue
        setattr(copy_, key, value)
    return copy_, size


def _object_bytes(value: Any) -> int:
    """The bytes of the tensor or array an object wraps (mmdet's ``BaseBoxes.tensor``,
    ``BitmapMasks.masks``); 0 for anything else."""
    for attr in ('tensor', 'masks'):
        inner = getattr(value, attr, None)
        if isinstance(inner, torch.Tensor):
            return inner.numel() * inner.element_size()
        if isinstance(inner, np.ndarray):
            return inner.nbytes
    return 0


def tree_bytes(tree: Any) -> int:
    """The bytes of the tensors in a nested list/tuple/dict."""
    if isinstance(tree, (list, tuple)):
        return sum(tree_bytes(v) for v in tree)
    if isinstance(tree, dict):
        return sum(tree_bytes(v) for v in tree.values())
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    return 0


class QuizCache:
    """Hard-buffer samples with their preprocessed (augmented) inputs, data samples
    and teachers' outputs, as a training step computed them, under a memory cap.

    Keyed by dataset index. A sample is stored when it enters the hard buffer
    (:meth:`put_batch`, from the training step's retained outputs); one that does not
    fit under ``max_bytes`` (its input, teachers' outputs and data sample's tensors)
    is not stored, and a quiz batch with such a sample is reloaded through the
    pipeline (and its teachers run). Entries of samples that left the buffer are
    dropped (:meth:`keep_only`). An input and its teachers' outputs always come from
    the same step, so they never disagree.

    Args:
        max_bytes: the cap on the stored tensors' bytes; 0 stores nothing.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.entries: Dict[int, Tuple[torch.Tensor, Any, Any, int]] = {}
        self.bytes = 0
        #: The bytes of the last sample stored (0 before any).
        self.sample_bytes = 0
        #: Why the last batch could not be cached (None if it could), for the log.
        self.refused: Optional[str] = None

    def disable(self) -> None:
        """Store nothing from now on (and drop what is stored)."""
        self.max_bytes = 0
        self.clear()

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, index: int) -> bool:
        return index in self.entries

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def _drop(self, index: int) -> None:
        entry = self.entries.pop(index, None)
        if entry is not None:
            self.bytes -= entry[3]

    def put_batch(self, indices: Sequence[int], rows: Sequence[int], inputs: torch.Tensor,
                  data_samples: list, teacher_outputs: tuple) -> int:
        """Store rows ``rows`` of a training step's batch as the samples ``indices``;
        returns how many were stored.

        Args:
            inputs: ``[B, C, H, W]``, the step's preprocessed inputs.
            teacher_outputs: ``(heads, maps)`` of the step's teachers on ``inputs``.
        """
        if not self.max_bytes or not len(rows):
            return 0
        try:
            outputs = split_rows(teacher_outputs, len(inputs), rows)
        except ValueError as error:
            self.refused = f'the teachers\' outputs cannot be split by sample: {error}'
            return 0
        stored = 0
        for index, row, output in zip(indices, rows, outputs):
            self._drop(index)
            entry_input = inputs[row].clone()
            sample, sample_size = compact_sample(data_samples[row])
            size = tree_bytes(output) + tree_bytes(entry_input) + sample_size
            self.sample_bytes = size
            if self.bytes + size > self.max_bytes:
                continue
            self.entries[index] = (entry_input, sample, output, size)
            self.bytes += size
            stored += 1
        return stored

    def keep_only(self, indices: Sequence[int]) -> None:
        """Drop the entries of samples not in ``indices`` (those left the buffer)."""
        keep = set(indices)
        for index in [i for i in self.entries if i not in keep]:
            self._drop(index)

    def batch(self, indices: Sequence[int]) -> Optional[Tuple[torch.Tensor, list, tuple]]:
        """``(inputs [Q, C, H, W], data_samples, (heads, maps))`` of the samples
        ``indices`` when every one is stored with inputs of one shape; else None.
        The data samples are copies."""
        entries = [self.entries.get(i) for i in indices]
        if not entries or any(e is None for e in entries):
            return None
        if len({tuple(e[0].shape) for e in entries}) > 1:
            return None
        inputs = torch.stack([e[0] for e in entries])
        samples = [copy.deepcopy(e[1]) for e in entries]
        return inputs, samples, stack_rows([e[2] for e in entries])
