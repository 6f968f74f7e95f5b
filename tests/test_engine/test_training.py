"""Training through MMEngine's runner with the real demo configs on generated data."""
import argparse
import os.path as osp
import uuid

import pytest
import torch
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


def test_checkpoints_load_weights_only_and_foreign_objects_are_refused(tmp_path):
    from mmkd_ext.utils.model_builder import build_model
    model, _ = build_model(TEACHER_CONFIGS['resnet18_w16.pth'])
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(args=argparse.Namespace(x=1))), path)
    with pytest.raises(UnsafeCheckpointError, match='allow-list'):
        load_model_weights(model, str(path), 'teacher 0')


class RunsCode:
    """Unpickles as ``os.system('touch MARKER')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return os.system, (f'touch {self.marker}', )


def test_a_checkpoint_whose_pickle_runs_code_is_refused_on_every_load_path(
        shapes_root, teacher_dir, tmp_path):
    runner = build_runner('aver', shapes_root, teacher_dir, tmp_path / 'run', max_iters=1)
    marker, path = tmp_path / 'pwned', tmp_path / 'evil.pth'
    torch.save(dict(state_dict=runner.model.state_dict(), meta=dict(x=RunsCode(marker))), path)
    with pytest.raises(UnsafeCheckpointError, match='allow-list'):  # a teacher's checkpoint
        load_model_weights(runner.model.teachers[0], str(path), 'teacher 0')
    with pytest.raises(UnsafeCheckpointError, match='allow-list'):  # load_from
        runner.load_checkpoint(str(path))
    with pytest.raises(UnsafeCheckpointError, match='allow-list'):  # --resume
        runner.resume(str(path))
    assert not marker.exists()


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
