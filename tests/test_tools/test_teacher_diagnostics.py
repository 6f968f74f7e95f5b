"""The teacher diagnostics (mmkd_ext/analysis, tools/analysis/teacher_diagnostics.py):
the statistics on hand-made tensors, every task's configs on tiny generated data, the
teacher score against tools/test.py, and the CLI."""
import importlib.util
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import (DEMO_TASKS, ROOT, det_kd_overrides, kd_overrides, run_tool,
                      seg_kd_overrides)
from mmkd_ext.analysis import (DiagnosticsInputError, check_distiller_config,
                               diagnose_teachers, sample_statistics)

CLI = 'tools/analysis/teacher_diagnostics.py'


def tiny_dataset(tmp_path_factory, task, num_val):
    root = str(tmp_path_factory.mktemp(f'diag_{task}'))
    DEMO_TASKS[task].generate(root, num_train=2, num_val=num_val, seed=0)
    return root


@pytest.fixture(scope='module')
def tiny_shapes(tmp_path_factory):
    """Shapes-10 with 16 val images."""
    return tiny_dataset(tmp_path_factory, 'classification', 16)


def cls_config(root, teacher_dir, batch_size=8):
    cfg = Config.fromfile(DEMO_TASKS['classification'].distill_config('aver'))
    cfg.merge_from_dict(kd_overrides(root, teacher_dir))
    cfg.merge_from_dict({'val_dataloader.batch_size': batch_size})
    return cfg


def check_report(report, num_teachers):
    """What holds for every task: a symmetric agreement matrix with ones on the
    diagonal, the oracle's loss at most every teacher's, shares in [0, 1]."""
    stats = report['per_sample']
    agreement = torch.tensor(stats['agreement'])
    assert agreement.shape == (num_teachers, num_teachers)
    assert torch.equal(agreement, agreement.T)
    assert torch.all(agreement.diagonal() == 1)
    assert ((agreement >= 0) & (agreement <= 1)).all()
    assert all(stats['oracle_loss'] <= loss + 1e-9 for loss in stats['mean_loss'])
    assert stats['best_single_loss'] == pytest.approx(min(stats['mean_loss']))
    assert 0 <= stats['room'] <= 1 and sum(stats['wins']) == pytest.approx(1)
    assert stats['best_teacher'] in report['teachers']
    assert set(report['scores']) == set(report['teachers'])
    assert all(report['metric'] in s for s in report['scores'].values())
    json.dumps(report)  # plain numbers only


# ------------------------------------------------------------------ statistics
def test_statistics_equal_hand_computed_values():
    losses = torch.tensor([[0.1, 2.0, 3.0], [1.0, 0.5, 2.0], [2.0, 3.0, 1.0], [0.2, 0.2, 4.0]])
    top1 = torch.tensor([[1, 1, 2], [3, 3, 3], [0, 1, 0], [2, 2, 2]])
    correct = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]], dtype=torch.bool)

    stats = sample_statistics(losses, top1, correct)
    assert stats['agreement'] == [[1, .75, .75], [.75, 1, .5], [.75, .5, 1]]  # exact
    assert stats['mean_loss'] == pytest.approx([0.825, 1.425, 2.5])
    assert stats['wins'] == pytest.approx([0.375, 0.375, 0.25])  # sample 3: a tie, halved
    assert stats['accuracy'] == pytest.approx([0.5, 0.5, 0.0])
    assert stats['best_teacher'] == 0  # the first of the two most accurate
    # Teacher 0 is wrong on samples 1 and 2; teacher 1 is right on sample 1.
    assert stats['room'] == pytest.approx(0.25)
    assert stats['oracle_accuracy'] == pytest.approx(0.75)
    assert stats['best_single_accuracy'] == pytest.approx(0.5)
    assert stats['oracle_loss'] == pytest.approx((0.1 + 0.5 + 1.0 + 0.2) / 4)
    assert stats['best_single_loss'] == pytest.approx(0.825)

    # Without correctness (detection, segmentation): by the loss alone; teacher 0 has
    # the lowest mean loss and a higher loss than another on samples 1 and 2 (on
    # sample 3 it ties, which leaves no room).
    by_loss = sample_statistics(losses, top1)
    assert by_loss['best_teacher'] == 0 and by_loss['room'] == pytest.approx(0.5)
    assert by_loss['accuracy'] is None and by_loss['oracle_accuracy'] is None
    assert by_loss['oracle_loss'] == stats['oracle_loss']


def test_statistics_refuse_empty_or_mismatched_tensors():
    with pytest.raises(ValueError, match='N >= 1'):
        sample_statistics(torch.zeros(0, 2), torch.zeros(0, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r'\[N, K\]'):
        sample_statistics(torch.zeros(4, 2), torch.zeros(4, 3, dtype=torch.long))


# ---------------------------------------------------------------- every task
def test_classification_scores_equal_tools_test_and_the_per_sample_pass(
        tmp_path, tiny_shapes, teacher_dir):
    """Over the whole val set: the val top-1 of each teacher (its own predict) equals
    its per-sample accuracy (the task view on the pool's outputs), the oracle beats
    every teacher, the room is the oracle's gain over the best teacher; and teacher
    0's score is what tools/test.py gives for its checkpoint with its own config."""
    report = diagnose_teachers(cls_config(tiny_shapes, teacher_dir), progress=False)
    check_report(report, 3)
    stats, names = report['per_sample'], report['teachers']
    assert report['num_samples'] == 16 and report['num_batches'] == 2
    assert report['metric'] == 'accuracy/top1'
    for name, accuracy in zip(names, stats['accuracy']):
        assert report['scores'][name]['accuracy/top1'] == pytest.approx(100 * accuracy)
    assert all(stats['oracle_accuracy'] >= a for a in stats['accuracy'])
    assert stats['best_single_accuracy'] == max(stats['accuracy'])
    assert stats['room'] == pytest.approx(stats['oracle_accuracy'] - stats['best_single_accuracy'])

    (filename, config), = list(DEMO_TASKS['classification'].teacher_configs.items())[:1]
    metrics = tmp_path / 'metrics.json'
    options = [f'{split}_dataloader.{key}' for split in ('val', 'test') for key in (
        f'dataset.data_root={tiny_shapes}', 'num_workers=0', 'persistent_workers=False')]
    result = run_tool('tools/test.py', config, osp.join(teacher_dir, filename),
                      '--work-dir', str(tmp_path / 'test'), '--metrics-json', str(metrics),
                      '--cfg-options', *options)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = json.loads(metrics.read_text())['accuracy/top1']
    assert report['scores'][names[0]]['accuracy/top1'] == pytest.approx(expected)


@pytest.mark.parametrize('task, overrides, teacher_dir, images, metric, view', [
    ('detection', det_kd_overrides, 'det_teacher_dir', 4, 'coco/bbox_mAP',
     'DenseDetectionView'),
    ('segmentation', seg_kd_overrides, 'seg_teacher_dir', 2, 'mIoU', 'SegmentationView'),
])
def test_dense_diagnostics_on_the_demo_pools(task, overrides, teacher_dir, images, metric,
                                             view, tmp_path_factory, request):
    root = tiny_dataset(tmp_path_factory, task, images)
    cfg = Config.fromfile(DEMO_TASKS[task].distill_config('aver'))
    cfg.merge_from_dict(overrides(root, request.getfixturevalue(teacher_dir)))
    cfg.merge_from_dict({'val_dataloader.batch_size': 2})
    report = diagnose_teachers(cfg, max_batches=1, progress=False)
    check_report(report, 2)
    assert report['num_samples'] == 2 and report['metric'] == metric
    assert report['task_view'] == view
    assert report['per_sample']['accuracy'] is None


def test_val_boxes_loaded_after_the_resize_are_scaled_to_the_input():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from mmkd_ext.analysis.teacher_diagnostics import (annotations_follow_resize,
                                                       boxes_to_input_frame)
    cfg = Config.fromfile(DEMO_TASKS['detection'].distill_config('aver'))
    assert annotations_follow_resize(cfg.val_dataloader.dataset.pipeline)
    assert not annotations_follow_resize(cfg.train_dataloader.dataset.pipeline)
    sample = DetDataSample(metainfo=dict(scale_factor=(2.0, 0.5)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 20., 30., 40.]]),
                                       labels=torch.tensor([1]))
    boxes_to_input_frame([sample])
    assert sample.gt_instances.bboxes.tolist() == [[20., 10., 60., 20.]]


# ------------------------------------------------------------------ bad input
def test_a_config_that_is_no_distiller_is_refused_with_what_to_pass(tiny_shapes):
    teacher = next(iter(DEMO_TASKS['classification'].teacher_configs.values()))
    with pytest.raises(DiagnosticsInputError, match=r"model.type='ImageClassifier', not a "
                       r'mmkd_ext.MultiTeacherDistiller.*configs/classification/distill/'):
        check_distiller_config(Config.fromfile(teacher))
    cfg = cls_config(tiny_shapes, '/nonexistent')
    with pytest.raises(DiagnosticsInputError, match='max_batches must be at least 1'):
        diagnose_teachers(cfg, max_batches=0)
    cfg.val_dataloader = None
    with pytest.raises(DiagnosticsInputError, match='no val_dataloader'):
        check_distiller_config(cfg)


def test_cli_refuses_a_teacher_config_with_a_clear_message(monkeypatch):
    spec = importlib.util.spec_from_file_location('_teacher_diagnostics_cli',
                                                  osp.join(ROOT, CLI))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    teacher = next(iter(DEMO_TASKS['classification'].teacher_configs.values()))
    monkeypatch.setattr(sys, 'argv', [CLI, teacher])
    with pytest.raises(SystemExit, match='not a mmkd_ext.MultiTeacherDistiller: the teacher '
                       'diagnostics need a distillation config'):
        cli.main()


def test_cli_writes_the_report_files_and_prints_the_tables(tmp_path, tiny_shapes, teacher_dir):
    options = {**kd_overrides(tiny_shapes, teacher_dir), 'val_dataloader.batch_size': 8}
    options = [f'{k}={v}' for k, v in options.items() if k.startswith(('val_', 'model.'))]
    out_dir = tmp_path / 'report'
    result = run_tool(CLI, DEMO_TASKS['classification'].distill_config('aver'),
                      '--max-batches', '1', '--out-dir', str(out_dir), '--cfg-options', *options)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| top-1 agreement | r18w24 | r18w16 | r50w8 |' in result.stdout
    assert '| room: samples whose best teacher is another |' in result.stdout
    assert sorted(p.name for p in out_dir.iterdir()) == [
        'teacher_diagnostics.json', 'teacher_diagnostics.md', 'teacher_diagnostics.png']
    report = json.loads((out_dir / 'teacher_diagnostics.json').read_text())
    assert report['num_samples'] == 8 and report['config'].endswith('kd_aver_r18w8_shapes10.py')
    assert '| oracle top-1 (best single) |' in (out_dir / 'teacher_diagnostics.md').read_text()
    assert (out_dir / 'teacher_diagnostics.png').read_bytes()[:4] == b'\x89PNG'
