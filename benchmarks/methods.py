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


class Variant(NamedTuple):
    """A benchmarked setting of a method's hook: the method's config with
    ``hook_options`` merged into its hook (the benchmark writes that config)."""
    key: str           # --methods
    name: str          # shown in the tables
    method: str        # the method it varies (its config and hook)
    hook_options: dict


#: MMKD's hypergradient options against its exact default (see
#: ``mmkd_ext.engine.optimizers.hypergradient``), and MMKD without the kept quiz samples
#: (its quiz batches reloaded and their teachers run, as before that reuse).
VARIANT_TABLE = (
    Variant('mmkd_first_order', 'MMKD, first-order task step', 'mmkd',
            dict(hypergradient='first_order_task')),
    Variant('mmkd_fd', 'MMKD, finite-difference', 'mmkd',
            dict(hypergradient='finite_difference')),
    Variant('mmkd_fd_small_step', 'MMKD, finite-difference, step 1e-3', 'mmkd',
            dict(hypergradient='finite_difference', finite_difference_epsilon=1e-3)),
    Variant('mmkd_fd_hvp', 'MMKD, finite-difference with curvature', 'mmkd',
            dict(hypergradient='finite_difference_hvp')),
    Variant('mmkd_fd_hvp_small_step', 'MMKD, finite-difference with curvature, step 1e-3',
            'mmkd', dict(hypergradient='finite_difference_hvp', finite_difference_epsilon=1e-3)),
    Variant('mmkd_one_step', 'MMKD, one-step look-ahead', 'mmkd',
            dict(inner_kd_steps=1, inner_ce_steps=0)),
    Variant('mmkd_fd_one_step', 'MMKD, finite-difference one-step', 'mmkd',
            dict(hypergradient='finite_difference', inner_kd_steps=1, inner_ce_steps=0)),
    Variant('mmkd_quiz_reloaded', 'MMKD, quiz samples reloaded', 'mmkd',
            dict(quiz_cache_mb=0)),
)
#: The variants by key.
VARIANTS = {variant.key: variant for variant in VARIANT_TABLE}


def method_hook(custom_hooks: list, method: str) -> dict:
    """The hook of ``method``'s config that a variant sets options of (MMKD's
    MetaWeightHook)."""
    wanted = {'mmkd': 'MetaWeightHook'}[method]
    for hook in custom_hooks:
        if str(hook.get('type', '')).split('.')[-1] == wanted:
            return hook
    raise KeyError(f'the {method} config has no {wanted} in custom_hooks')
