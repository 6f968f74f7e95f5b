"""The weighting methods of the demo, the benchmark and the tests, in their tables' order.

Each has a short key (``--methods``, the ``kd_<key>_*.py`` config names), a display
name (the tables' rows) and a configuration file, ``configs/_base_/methods/<key>.py``,
which holds the method's ``weighting`` (the distiller's ``model.weighting``) and its
``custom_hooks``. Every task's distillation config composes that file with the task's
own base and overrides only what is task-specific::

    _base_ = ['../../_base_/distill/<task>.py', '../../_base_/methods/<key>.py']
    model = dict(weighting=_base_.pop('weighting'))
"""
import os.path as osp
from typing import NamedTuple


class Method(NamedTuple):
    key: str   # --methods, kd_<key>_*.py
    name: str  # shown in the tables

    @property
    def config(self) -> str:
        """Its configuration file, relative to the repository root."""
        return osp.join('configs', '_base_', 'methods', f'{self.key}.py')


#: The methods, in the tables' order.
METHOD_TABLE = (
    Method('aver', 'AVER'),
    Method('fixed', 'fixed'),
    Method('entropy', 'EBKD (entropy)'),
    Method('confidence', 'CA-MKD (confidence)'),
    Method('mmkd', 'MMKD (meta-learned)'),
    Method('mtkd_rl', 'MTKD-RL (deterministic)'),
    Method('mtkd_rl_stochastic', 'MTKD-RL (stochastic)'),
)
#: Their short keys, in the same order.
METHODS = tuple(method.key for method in METHOD_TABLE)
