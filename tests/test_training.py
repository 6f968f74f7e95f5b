"""Training through MMEngine's runner with the real demo configs on generated data."""
import argparse
import os.path as osp
import uuid

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmkd_ext.utils.checkpoint import UnsafeCheckpointError, load_model_weights
from conftest import TEACHER_CONFIGS, load_kd_config


def build_runner(method, shapes_root, teacher_dir, work_dir, max_iters, **extra):
    cfg = load_kd_config(method, shapes_root, teacher_dir, max_iters=max_iters)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{method}_{uuid.uuid4().hex[:8]}'  # one visualizer per runner
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.merge_from_dict(extra)
    return Runner.from_cfg(cfg)


def state_of(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize('method', ['aver', 'confidence'])
def test_teachers_are_bit_identical_after_training(method, shapes_root, teacher_dir, tmp_path):
    runner = build_runner(method, shapes_root, teacher_dir, tmp_path, max_iters=3)
    model = runner.model
    teachers_before = [state_of(t) for t in model.teachers]
    student_before = state_of(model.student)
    runner.train()
    for before, teacher in zip(teachers_before, model.teachers):
        after = teacher.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
    student_after = model.student.state_dict()
    assert any(not torch.equal(student_before[k], student_after[k]) for k in student_before)
    # And the teachers are exactly their checkpoints.
    saved = torch.load(osp.join(teacher_dir, 'resnet18_w24.pth'))['state_dict']
    assert all(torch.equal(saved[k], v) for k, v in model.teachers[0].state_dict().items())


class StopAfter(Hook):
    """Simulates a crash right after iteration ``n`` (its checkpoint is written)."""
    priority = 'LOWEST'

    def __init__(self, n):
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.n:
            raise KeyboardInterrupt('simulated crash')


def test_resume_equals_an_uninterrupted_run(shapes_root, teacher_dir, tmp_path):
    full = build_runner('aver', shapes_root, teacher_dir, tmp_path / 'full', max_iters=4)
    full.train()
    expected = state_of(full.model)

    crashed = build_runner('aver', shapes_root, teacher_dir, tmp_path / 'resumed', max_iters=4)
    crashed.register_hook(StopAfter(2))
    with pytest.raises(KeyboardInterrupt):
        crashed.train()
    assert osp.isfile(tmp_path / 'resumed' / 'iter_2.pth')

    resumed = build_runner('aver', shapes_root, teacher_dir, tmp_path / 'resumed',
                           max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    got = state_of(resumed.model)
    assert got.keys() == expected.keys()
    diff = {k: (got[k].float() - expected[k].float()).abs().max().item()
            for k in expected if not torch.equal(got[k], expected[k])}
    assert not diff, f'parameters differ after resume: {diff}'


def test_checkpoints_load_weights_only_and_foreign_objects_are_refused(tmp_path):
    from mmkd_ext.utils.model_builder import build_model
    model, _ = build_model(TEACHER_CONFIGS['resnet18_w16.pth'])
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(args=argparse.Namespace(x=1))), path)
    with pytest.raises(UnsafeCheckpointError, match='allow-list'):
        load_model_weights(model, str(path), 'teacher 0')


def test_getattr_in_a_checkpoint_only_reaches_history_buffer_statistics(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmkd_ext.utils.checkpoint import safe_torch_load

    class Sneaky:
        def __reduce__(self):  # unpickles as getattr(HistoryBuffer, '__init__')
            return getattr, (HistoryBuffer, '__init__')

    path = tmp_path / 'sneaky.pth'
    torch.save(dict(meta=dict(x=Sneaky())), path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        safe_torch_load(str(path))
    # MMEngine's own use of it still loads.
    buffer = HistoryBuffer([1.0, 2.0], [1, 1])
    torch.save(dict(hub=buffer), tmp_path / 'hub.pth')
    assert safe_torch_load(str(tmp_path / 'hub.pth'))['hub'].mean() == 1.5
