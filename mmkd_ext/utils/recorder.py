"""Record the outputs of named submodules with forward hooks."""
import difflib
from typing import Dict, Iterable, List

import torch.nn as nn


def get_submodule_or_raise(model: nn.Module, name: str, owner: str = 'model') -> nn.Module:
    """``model.get_submodule(name)`` with an error that lists the closest names."""
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.3)
        raise KeyError(
            f'{owner} has no submodule {name!r}. Closest names: {close}. '
            'Use the dotted name printed by `model.named_modules()`.')
    return model.get_submodule(name)


class OutputRecorder:
    """Keeps the latest output of each named submodule while active.

    Use as a context manager; outputs of modules called several times in one
    forward are kept in call order.

    Example:
        >>> recorder = OutputRecorder(model, ['backbone', 'neck'])
        >>> with recorder:
        ...     model(inputs, mode='tensor')
        >>> recorder.outputs['backbone']  # tuple of stage outputs
    """

    def __init__(self, model: nn.Module, names: Iterable[str], owner: str = 'model'):
        self.names = list(dict.fromkeys(names))
        self._modules = {n: get_submodule_or_raise(model, n, owner) for n in self.names}
        self._handles: List = []
        self.calls: Dict[str, list] = {}

    def __enter__(self) -> 'OutputRecorder':
        self.calls = {n: [] for n in self.names}
        for name, module in self._modules.items():
            self._handles.append(module.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, name: str):
        def hook(module, args, output):
            self.calls[name].append(output)
        return hook

    @property
    def outputs(self) -> Dict[str, object]:
        """The last output of each module (KeyError names a module never called)."""
        return self.last_outputs(self.calls)

    def last_outputs(self, names) -> Dict[str, object]:
        """The last output of each of ``names`` (KeyError names a module never called)."""
        missing = [n for n in names if not self.calls[n]]
        if missing:
            raise KeyError(f'These modules did not run in the forward pass: {missing}.')
        return {n: self.calls[n][-1] for n in names}
