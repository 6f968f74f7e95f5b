"""The family matrix: every zoo family of ``benchmarks/families.py`` distilled with
every weighting through mmengine's Runner, or refused at build as the table says.

Student and two teachers are the family's zoo config shrunk for a CPU (random weights,
two seeds), on the task's generated data, for two iterations. The default run takes
the fast families with MMKD and MTKD-RL; the whole matrix runs under ``slow``.
"""
import os.path as osp

import pytest
import torch

from benchmarks.families import (FAMILIES, MATRIX_METHODS, MIXED_DETECTION_LAYERS,
                                 MIXED_DETECTION_POOL, MIXED_DETECTION_STUDENT,
                                 expected_outcome, family_kd_config, matrix_cases,
                                 pool_kd_config, save_family_checkpoint, save_family_teachers)
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
    _check_distilled(runner, method, checkpoints)


def _check_distilled(runner, method, checkpoints, task_teachers=None):
    """Two iterations done; each step's weights over the ``task_teachers`` (all by
    default) finite, rows summing to 1 (EBKD's to (K-1)/K); MMKD's meta step run
    exactly; the teachers unchanged."""
    model = runner.model
    step = model.last_step
    assert step is not None and runner.iter == 2
    k = task_teachers or len(checkpoints)
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


@pytest.mark.parametrize('method', [
    pytest.param(m, marks=() if m in ('mmkd', 'mtkd_rl') else (pytest.mark.slow, ))
    for m in MATRIX_METHODS])
def test_a_pool_of_five_dense_head_families_distils_one_student(method, coco_root,
                                                                family_teacher_dir, tmp_path):
    """RetinaNet (9 anchors, strides 8-64) taught by RetinaNet, FCOS, GFL, RTMDet and
    YOLOX teachers with head KD (DenseDetectionView's rule for other layouts) and
    feature KD on the shared FPN levels, with every weighting."""
    from mmengine.runner import Runner
    task = DEMO_TASKS['detection']
    teachers = [(FAMILIES[name], save_family_checkpoint(FAMILIES[name], family_teacher_dir, i))
                for i, name in enumerate(MIXED_DETECTION_POOL)]
    checkpoints = [path for _, path in teachers]
    cfg = pool_kd_config(FAMILIES[MIXED_DETECTION_STUDENT], teachers, method, task.kd_config,
                         task.data_options(coco_root), str(tmp_path),
                         feature_layers=MIXED_DETECTION_LAYERS)
    assert cfg.model.logit_kd is not None and cfg.model.feature_kd is not None
    runner = Runner.from_cfg(cfg)
    runner.train()
    _check_distilled(runner, method, checkpoints)
    batch = runner.model.last_step.batch
    assert batch.logit_kd.shape == batch.feature_kd.shape == (2, len(teachers))
    assert (batch.logit_kd > 0).all() and (batch.feature_kd > 0).all()
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    for i, name in enumerate(MIXED_DETECTION_POOL[1:], start=1):  # the other layouts
        assert f"Head KD from teacher '{name} #{i}', whose head has another layout" in log
    assert "teacher 'RetinaNet #0', whose" not in log


@pytest.mark.parametrize('method', [
    pytest.param(m, marks=() if m in ('mmkd', 'mtkd_rl') else (pytest.mark.slow, ))
    for m in MATRIX_METHODS])
def test_a_classifier_teaches_a_detector_beside_two_detection_teachers(
        method, coco_root, family_teacher_dir, tmp_path):
    """Two RetinaNet teachers (task teachers: head and feature KD, weighted by the
    method) and an mmpretrain ResNet (a feature teacher: its last backbone map against
    the student's, with the fixed share 1/3 of the feature weight), every weighting."""
    from mmengine.runner import Runner
    task = DEMO_TASKS['detection']
    retinanet, resnet = FAMILIES['RetinaNet'], FAMILIES['ResNet']
    teachers = [(retinanet, save_family_checkpoint(retinanet, family_teacher_dir, seed))
                for seed in (0, 1)] + [(resnet, save_family_checkpoint(resnet,
                                                                       family_teacher_dir, 0))]
    cfg = pool_kd_config(retinanet, teachers, method, task.kd_config,
                         task.data_options(coco_root), str(tmp_path),
                         feature_layers=('backbone[-1]', ))
    runner = Runner.from_cfg(cfg)
    runner.train()
    _check_distilled(runner, method, [path for _, path in teachers], task_teachers=2)
    batch = runner.model.last_step.batch
    assert batch.logit_kd.shape == batch.feature_kd.shape == (2, 2)
    assert batch.feature_teacher_kd.shape == (2, 1) and (batch.feature_teacher_kd > 0).all()
    scalars = runner.message_hub.log_scalars
    assert scalars['train/ResNet #2.w_feat'].current() == pytest.approx(1 / 3)
    assert 'train/ResNet #2.feat' in scalars and 'train/ResNet #2.kd' not in scalars
