"""The detection configs on generated COCO data, through MMEngine's runner and the tools."""
import json
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import DET_KD_CONFIG, DET_STUDENT_CONFIG, det_kd_overrides, run_tool

# The weightings without a hook differ from AVER only in the weighting module (each is
# run on tiny detectors in test_detection.py); their config runs are long tests.
METHODS = ['aver', 'mmkd', 'mtkd_rl'] + [
    pytest.param(m, marks=pytest.mark.slow)
    for m in ('fixed', 'entropy', 'confidence', 'mtkd_rl_stochastic')]


@pytest.mark.parametrize('method', METHODS)
def test_every_weighting_trains_a_detector(method, coco_root, det_teacher_dir, tmp_path):
    cfg = Config.fromfile(DET_KD_CONFIG.format(method))
    cfg.merge_from_dict(det_kd_overrides(coco_root, det_teacher_dir, max_iters=2))
    if method == 'mmkd':  # a quiz batch of the training batch size, from the first step
        cfg.custom_hooks[0].update(interval=1, buffer_size=4, quiz_batch_size=4)
    cfg.work_dir, cfg.experiment_name = str(tmp_path), f'{method}_{uuid.uuid4().hex[:6]}'
    runner = Runner.from_cfg(cfg)
    teacher = {k: v.clone() for k, v in runner.model.teachers[0].state_dict().items()}
    runner.train()
    step = runner.model.last_step
    assert step.batch.logit_kd.shape == (4, 2) and len(step.batch.student_features) == 4
    assert all(torch.equal(teacher[k], v) for k, v in runner.model.teachers[0].state_dict().items())
    scalars = runner.message_hub.log_scalars
    assert {'train/loss_kd', 'train/loss_feat', 'train/r34w32.w_logit'} <= set(scalars)


@pytest.fixture(scope='module')
def trained_det(coco_root, det_teacher_dir, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('det_cli')
    options = det_kd_overrides(coco_root, det_teacher_dir)
    options.update({'train_cfg.max_epochs': 1, 'param_scheduler': '[]'})
    args = ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    result = run_tool('tools/train.py', DET_KD_CONFIG.format('confidence'), '--work-dir',
                      str(work_dir), *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    return work_dir, checkpoint, args


def test_test_tool_reports_the_students_bbox_map(trained_det):
    work_dir, checkpoint, args = trained_det
    metrics = work_dir / 'metrics.json'
    result = run_tool('tools/test.py', DET_KD_CONFIG.format('confidence'), checkpoint,
                      '--work-dir', str(work_dir), '--metrics-json', str(metrics), *args)
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(metrics.read_text())
    assert 0.0 <= values['coco/bbox_mAP'] <= 1.0 and 'coco/bbox_mAP_50' in values


def test_exported_student_runs_in_plain_mmdet(trained_det, coco_root, tmp_path):
    _, checkpoint, _ = trained_det
    out = tmp_path / 'student.pth'
    result = run_tool('tools/export_student.py', checkpoint, str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    # Plain mmdet, no mmkd_ext import in the child process.
    script = (
        'from mmengine.config import Config\n'
        'from mmdet.apis import init_detector, inference_detector\n'
        f'cfg = Config.fromfile({DET_STUDENT_CONFIG!r})\n'
        'cfg.pop("custom_imports")\n'
        'cfg.test_dataloader.dataset.type = "CocoDataset"\n'
        f'model = init_detector(cfg, {str(out)!r}, device="cpu")\n'
        f'result = inference_detector(model, {coco_root!r} + "/val2017/000000000001.jpg")\n'
        'print("DETS", len(result.pred_instances), model.dataset_meta["classes"][0])\n')
    result = run_tool('-c', script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'DETS' in result.stdout and result.stdout.strip().endswith('disc')
    exported = torch.load(out, weights_only=True)['state_dict']
    distilled = torch.load(checkpoint, weights_only=False)['state_dict']
    assert torch.equal(exported['bbox_head.retina_cls.weight'],
                       distilled['student.bbox_head.retina_cls.weight'])


def test_gfl_teacher_trains_and_teaches_retinanet_student_through_features(
        coco_root, det_teacher_dir, tmp_path):
    """The GFL teacher config trains as a plain mmdet config; its checkpoint then
    joins the two RetinaNet teachers, whose heads it cannot be compared with, through
    feature KD."""
    from conftest import DET_CONFIGS
    teacher_cfg = Config.fromfile(f'{DET_CONFIGS}/teachers/gfl_r34_w32_coco_shapes.py')
    teacher_cfg.merge_from_dict(det_kd_overrides(coco_root, det_teacher_dir, max_iters=2,
                                                 teachers={}))
    teacher_cfg.work_dir, teacher_cfg.experiment_name = str(tmp_path / 'gfl'), 'gfl'
    Runner.from_cfg(teacher_cfg).train()
    gfl_checkpoint = tmp_path / 'gfl' / 'iter_2.pth'

    cfg = Config.fromfile(f'{DET_CONFIGS}/distill/kd_aver_retinanet_gfl_to_r18_coco_shapes.py')
    cfg.merge_from_dict(det_kd_overrides(coco_root, det_teacher_dir, max_iters=2))
    cfg.model.teachers[2].checkpoint = str(gfl_checkpoint)
    cfg.work_dir, cfg.experiment_name = str(tmp_path / 'kd'), 'kd'
    runner = Runner.from_cfg(cfg)
    runner.train()
    batch = runner.model.last_step.batch
    assert type(runner.model.teachers[2]).__name__ == 'GFL'
    assert batch.feature_kd.shape == (4, 3) and not batch.logit_kd.any()
    assert torch.isfinite(batch.feature_kd).all() and (batch.feature_kd > 0).all()
    scalars = runner.message_hub.log_scalars
    assert 'train/gfl_r34w32.feat' in scalars and 'train/loss_kd' not in scalars
