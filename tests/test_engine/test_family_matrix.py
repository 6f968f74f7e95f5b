"""The family matrix: every zoo family of ``benchmarks/families.py`` distilled with
every weighting through mmengine's Runner, or refused at build as the table says.

Student and two teachers are the family's zoo config shrunk for a CPU (random weights,
two seeds), on the task's generated data, for two iterations. The default run takes
the fast families with MMKD and MTKD-RL; the whole matrix runs under ``slow``.
"""
import pytest
import torch

from benchmarks.families import (expected_outcome, family_kd_config, matrix_cases,
                                 save_family_teachers)
from conftest import DEMO_TASKS

DATA_FIXTURE = {'classification': 'shapes_root', 'detection': 'coco_root',
                'segmentation': 'streets_root'}
FAST = {(f.name, m) for f, m in matrix_cases(fast_only=True)}


def _case_param(family, method):
    marks = () if (family.name, method) in FAST else (pytest.mark.slow, )
    return pytest.param(family, method, id=f'{family.name}-{method}'.replace(' ', '_'),
                        marks=marks)


@pytest.fixture(scope='session')
def family_teacher_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('family_teachers'))


@pytest.mark.parametrize('family,method', [_case_param(f, m) for f, m in matrix_cases()])
def test_family_distils_with_every_weighting(family, method, request, family_teacher_dir,
                                             tmp_path):
    from mmengine.runner import Runner
    task = DEMO_TASKS[family.task]
    data_root = request.getfixturevalue(DATA_FIXTURE[family.task])
    checkpoints = save_family_teachers(family, family_teacher_dir)
    cfg = family_kd_config(family, method, task.kd_config, task.data_options(data_root),
                           checkpoints, str(tmp_path))
    refusal = expected_outcome(family, method)
    if refusal is not None:
        with pytest.raises((TypeError, ValueError), match=refusal):
            Runner.from_cfg(cfg)
        return
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    step = model.last_step
    assert step is not None and runner.iter == 2
    k = len(checkpoints)
    row_sum = (k - 1) / k if method == 'entropy' else 1.0  # EBKD as its reference
    for weights in (step.weights.logit, step.weights.feature):
        assert weights.shape == (2, k) and torch.isfinite(weights).all()
        torch.testing.assert_close(weights.sum(1), torch.full((2, ), row_sum))
    if method == 'mmkd':  # exact: nothing taken first-order, every meta step run
        from mmkd_ext.engine.hooks import MetaWeightHook
        hook = next(h for h in runner.hooks if isinstance(h, MetaWeightHook))
        assert hook.second_order.first_order == {}
        assert runner.message_hub.get_scalar('train/meta_loss').current() > 0
    for teacher, path in zip(model.teachers, checkpoints):  # frozen: unchanged
        saved = torch.load(path, map_location='cpu')['state_dict']
        for key, value in teacher.state_dict().items():
            assert torch.equal(value, saved[key]), key
