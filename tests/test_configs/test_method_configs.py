"""The method table and the configs: every method has its ``_base_/methods`` file, and
every task's distillation config per method (demo and real-data) composes it."""
import ast
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from benchmarks.methods import METHOD_TABLE
from conftest import CONFIGS, DEMO_TASKS, ROOT

#: Each family of distillation configs, {} for the method's key.
KD_CONFIGS = {name: task.kd_config for name, task in DEMO_TASKS.items()}
KD_CONFIGS.update({f'{name}-real-data': task.real_data_config
                   for name, task in DEMO_TASKS.items() if task.real_data_config})
METHOD_FILES = {osp.join(ROOT, method.config) for method in METHOD_TABLE}


def direct_bases(path: str) -> list:
    """The local files in ``path``'s own ``_base_`` (mmdet::, mmseg:: ones left out)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    value = next((node.value for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(t, 'id', None) == '_base_' for t in node.targets)), None)
    names = [] if value is None else ast.literal_eval(value)
    return [osp.normpath(osp.join(osp.dirname(path), name))
            for name in ([names] if isinstance(names, str) else names) if '::' not in name]


def base_files(path: str) -> list:
    """The local files of ``path``'s ``_base_`` chain, depth first."""
    return [f for base in direct_bases(path) for f in [base] + base_files(base)]


def test_the_methods_files_are_those_of_the_method_table():
    found = glob.glob(osp.join(CONFIGS, '_base_', 'methods', '*.py'))
    assert set(found) == METHOD_FILES


@pytest.mark.parametrize('method', METHOD_TABLE, ids=lambda m: m.key)
def test_a_methods_file_holds_its_weighting_and_hooks_only(method):
    cfg = Config.fromfile(osp.join(ROOT, method.config)).to_dict()
    assert 'weighting' in cfg and set(cfg) <= {'weighting', 'custom_hooks'}


@pytest.mark.parametrize('family', sorted(KD_CONFIGS))
@pytest.mark.parametrize('method', METHOD_TABLE, ids=lambda m: m.key)
def test_every_task_has_a_distill_config_per_method_composing_it(family, method):
    """The method's file is in the config's ``_base_`` chain; the config puts its
    weighting in the model (task-specific values may differ) and keeps its hooks."""
    path = KD_CONFIGS[family].format(method.key)
    assert osp.isfile(path)
    assert osp.join(ROOT, method.config) in base_files(path)
    own = Config.fromfile(osp.join(ROOT, method.config)).to_dict()
    cfg = Config.fromfile(path).to_dict()
    assert 'weighting' not in cfg  # popped into the model, not left at the top
    weighting = cfg['model']['weighting']
    assert weighting['type'] == own['weighting']['type']
    assert set(own['weighting']) <= set(weighting)
    hooks = cfg.get('custom_hooks', [])
    assert [h['type'] for h in hooks] == [h['type'] for h in own.get('custom_hooks', [])]
    assert all(set(mine) <= set(hook) for mine, hook in zip(own.get('custom_hooks', []), hooks))


def test_every_distillation_config_composes_one_method():
    configs = [p for p in glob.glob(osp.join(CONFIGS, '*', '*', 'kd_*.py'))
               if not p.startswith(osp.join(CONFIGS, '_base_'))]
    # and the detection pools with a GFL teacher and with a classifier
    assert len(configs) == len(KD_CONFIGS) * len(METHOD_TABLE) + 2
    for path in configs:
        assert len([f for f in direct_bases(path) if f in METHOD_FILES]) == 1, path
