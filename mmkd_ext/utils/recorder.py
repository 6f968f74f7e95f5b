"""Record the outputs of named submodules with forward hooks."""
import difflib
import re
from typing import Dict, Iterable, List, Tuple

import torch.nn as nn

#: ``module.name`` followed by any number of ``[i]`` output indices.
_SELECTOR = re.compile(r'(?P<module>[^\[\]]+)(?P<indices>(?:\[-?\d+\])*)')


def parse_selector(selector: str) -> Tuple[str, Tuple[int, ...]]:
    """``'backbone[-1]'`` -> ``('backbone', (-1,))``; ``'neck'`` -> ``('neck', ())``.

    A layer selector is a dotted submodule name, optionally followed by indices into
    the module's output (a tuple or list): ``backbone[-1]`` is the backbone's last
    output, ``backbone[-1][0]`` the first element of that (e.g. the class token of
    a DeiT's ``(cls, dist)`` pair).
    """
    match = _SELECTOR.fullmatch(selector) if isinstance(selector, str) else None
    if match is None:
        raise ValueError(f'Bad layer selector {selector!r}: use a dotted submodule name, '
                         "optionally followed by output indices ('backbone', "
                         "'backbone[-1]', 'neck[0]').")
    indices = tuple(int(i) for i in re.findall(r'-?\d+', match['indices']))
    return match['module'], indices


def select_output(output, indices: Tuple[int, ...], selector: str):
    """``output[i][j]...`` for ``indices``; each index applies to a tuple or list
    (never to a tensor, whose first dimension is the batch)."""
    for depth, index in enumerate(indices):
        if not isinstance(output, (tuple, list)):
            module, _ = parse_selector(selector)
            taken = module + ''.join(f'[{i}]' for i in indices[:depth])
            raise TypeError(f'Layer selector {selector!r}: {taken!r} is a '
                            f'{type(output).__name__}, not a tuple or list of outputs; '
                            f'select {taken!r} itself.')
        if not -len(output) <= index < len(output):
            raise IndexError(f'Layer selector {selector!r}: index {index} out of range '
                             f'for {len(output)} outputs.')
        output = output[index]
    return output


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
    """Keeps the latest output of each selected submodule while active.

    Use as a context manager; outputs of modules called several times in one
    forward are kept in call order. Names are layer selectors
    (:func:`parse_selector`): a submodule name, optionally with indices into its
    output; one hook serves every selector of a module.

    Example:
        >>> recorder = OutputRecorder(model, ['backbone', 'backbone[-1]'])
        >>> with recorder:
        ...     model(inputs, mode='tensor')
        >>> recorder.outputs['backbone']  # tuple of stage outputs
        >>> recorder.outputs['backbone[-1]']  # the last stage's output
    """

    def __init__(self, model: nn.Module, names: Iterable[str], owner: str = 'model'):
        self.names = list(dict.fromkeys(names))
        self._selectors = {n: parse_selector(n) for n in self.names}
        modules = dict.fromkeys(module for module, _ in self._selectors.values())
        self._modules = {n: get_submodule_or_raise(model, n, owner) for n in modules}
        self._handles: List = []
        #: Outputs of each recorded module (by module name) in call order.
        self.calls: Dict[str, list] = {}

    def __enter__(self) -> 'OutputRecorder':
        self.calls = {n: [] for n in self._modules}
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
        """The last output of each selector (KeyError names a module never called)."""
        return self.last_outputs(self.names)

    def last_outputs(self, names) -> Dict[str, object]:
        """The last output of each of the selectors ``names``, indexed as they say
        (KeyError names a module never called)."""
        missing = [n for n in names if not self.calls[self._selectors[n][0]]]
        if missing:
            raise KeyError(f'These modules did not run in the forward pass: {missing}.')
        selected = {}
        for name in names:
            module, indices = self._selectors[name]
            selected[name] = select_output(self.calls[module][-1], indices, name)
        return selected
