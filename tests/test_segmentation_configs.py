"""The segmentation configs on generated Cityscapes data, through MMEngine's runner and
the tools; the real-Cityscapes configs built on mmseg's model zoo."""
import glob
import json
import os.path as osp
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import (CONFIGS, SEG_CONFIGS, SEG_KD_CONFIG, SEG_STUDENT_CONFIG, run_tool,
                      seg_kd_overrides)

# The weightings without a hook differ from AVER only in the weighting module (each is
# run on tiny segmentors in test_segmentation.py); their config runs are long tests.
METHODS = ['aver', 'mmkd', 'mtkd_rl'] + [
    pytest.param(m, marks=pytest.mark.slow)
    for m in ('fixed', 'entropy', 'confidence', 'mtkd_rl_stochastic')]
ZOO_CONFIGS = sorted(glob.glob(osp.join(SEG_CONFIGS, 'cityscapes', 'kd_*_cityscapes.py')))
NO_DOWNLOAD = {'pretrained': None}  # no ImageNet weights can be fetched here
CONFIGS_BASE = osp.join(CONFIGS, '_base_')


@pytest.mark.parametrize('method', METHODS)
def test_every_weighting_trains_a_segmentor(method, streets_root, seg_teacher_dir, tmp_path):
    cfg = Config.fromfile(SEG_KD_CONFIG.format(method))
    cfg.merge_from_dict(seg_kd_overrides(streets_root, seg_teacher_dir, max_iters=2))
    if method == 'mmkd':  # a quiz batch of the training batch size, from the first step
        cfg.custom_hooks[0].update(interval=1, buffer_size=4, quiz_batch_size=4)
    cfg.work_dir, cfg.experiment_name = str(tmp_path), f'{method}_{uuid.uuid4().hex[:6]}'
    runner = Runner.from_cfg(cfg)
    teacher = {k: v.clone() for k, v in runner.model.teachers[1].state_dict().items()}
    runner.train()
    step = runner.model.last_step
    assert step.batch.logit_kd.shape == (4, 2) and len(step.batch.student_features) == 1
    assert all(torch.equal(teacher[k], v) for k, v in runner.model.teachers[1].state_dict().items())
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in runner.model.modules())
    scalars = runner.message_hub.log_scalars
    assert {'train/loss_kd', 'train/loss_feat', 'train/psp_r34w16.w_logit'} <= set(scalars)


@pytest.fixture(scope='module')
def trained_seg(streets_root, seg_teacher_dir, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('seg_cli')
    options = seg_kd_overrides(streets_root, seg_teacher_dir)
    options.update({'train_cfg.max_iters': 4, 'train_cfg.val_interval': 4,
                    'default_hooks.checkpoint.interval': 4, 'param_scheduler': '[]'})
    args = ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    result = run_tool('tools/train.py', SEG_KD_CONFIG.format('confidence'), '--work-dir',
                      str(work_dir), *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    return work_dir, checkpoint, args


def test_test_tool_reports_the_students_miou(trained_seg):
    work_dir, checkpoint, args = trained_seg
    metrics = work_dir / 'metrics.json'
    result = run_tool('tools/test.py', SEG_KD_CONFIG.format('confidence'), checkpoint,
                      '--work-dir', str(work_dir), '--metrics-json', str(metrics), *args)
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(metrics.read_text())
    assert 0.0 <= values['mIoU'] <= 100.0 and 'aAcc' in values


def test_exported_student_runs_in_plain_mmseg(trained_seg, streets_root, tmp_path):
    _, checkpoint, _ = trained_seg
    out = tmp_path / 'student.pth'
    result = run_tool('tools/export_student.py', checkpoint, str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    image = sorted(glob.glob(f'{streets_root}/leftImg8bit/val/*/*_leftImg8bit.png'))[0]
    # Plain mmseg, no mmkd_ext import in the child process.
    script = (
        'from mmengine.config import Config\n'
        'from mmseg.apis import init_model, inference_model\n'
        f'cfg = Config.fromfile({SEG_STUDENT_CONFIG!r})\n'
        'cfg.pop("custom_imports")\n'
        f'model = init_model(cfg, {str(out)!r}, device="cpu")\n'
        f'result = inference_model(model, {image!r})\n'
        'print("SEG", tuple(result.pred_sem_seg.data.shape), model.dataset_meta["classes"][0])\n')
    result = run_tool('-c', script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith('SEG (1, 128, 256) road')
    exported = torch.load(out, weights_only=True)['state_dict']
    distilled = torch.load(checkpoint, weights_only=False)['state_dict']
    assert torch.equal(exported['decode_head.conv_seg.weight'],
                       distilled['student.decode_head.conv_seg.weight'])


# ------------------------------------------------------------- real Cityscapes
@pytest.fixture(scope='session')
def zoo_seg_teacher_checkpoints(tmp_path_factory):
    """Random weights in the zoo teachers' architectures (users download the real ones)."""
    from mmkd_ext.utils.model_builder import build_model
    folder = tmp_path_factory.mktemp('zoo_seg_teachers')
    paths = []
    for config in ('pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
                   'deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'):
        model, _ = build_model(f'mmseg::{config}', cfg_options=NO_DOWNLOAD)
        paths.append(str(folder / osp.basename(config).replace('.py', '.pth')))
        torch.save(dict(state_dict=model.state_dict()), paths[-1])
    return paths


def test_every_cityscapes_config_names_model_zoo_teachers():
    assert len(ZOO_CONFIGS) == 7
    for path in ZOO_CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.model.student.config == \
            'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
        for teacher in cfg.model.teachers:
            assert teacher.config.startswith('mmseg::') and '80k_cityscapes-512x1024' in \
                teacher.config
            assert teacher.checkpoint.startswith('https://') and teacher.checkpoint.endswith('.pth')
        assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'
        assert cfg.train_dataloader.dataset.data_root == 'data/cityscapes/'
        assert cfg.train_cfg.max_iters == 80000
        assert cfg.train_dataloader.dataset.pipeline[3].crop_size == (512, 1024)


@pytest.mark.parametrize('method', ['aver', pytest.param('mtkd_rl', marks=pytest.mark.slow)])
def test_cityscapes_config_trains_with_overridden_checkpoints_and_data(
        method, zoo_seg_teacher_checkpoints, streets_root, tmp_path):
    """The full distiller of the real config (zoo R101 teachers, R18 student) on the
    generated data with its 64x128 training crops instead of 512x1024."""
    cfg = Config.fromfile(osp.join(SEG_CONFIGS, 'cityscapes',
                                   f'kd_{method}_pspnet_deeplabv3_r101_to_r18_cityscapes.py'))
    small = Config.fromfile(osp.join(CONFIGS_BASE, 'datasets/cityscapes_streets.py'))
    cfg.merge_from_dict({
        'model.teachers.0.checkpoint': zoo_seg_teacher_checkpoints[0],
        'model.teachers.1.checkpoint': zoo_seg_teacher_checkpoints[1],
        'model.student.cfg_options': dict(NO_DOWNLOAD, **{
            'data_preprocessor.size': small.crop_size}),
        'model.probe_shape': (3, 128, 256),
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': streets_root + '/',
        'train_dataloader.dataset.pipeline': small.train_pipeline,
        'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1,
                          val_interval=10**6),
        'param_scheduler': [],
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10**6, by_epoch=False),
        'val_dataloader': None, 'val_cfg': None, 'val_evaluator': None,
    })
    if method == 'mtkd_rl':
        cfg.model.weighting.warmup_epochs = 0
    cfg.work_dir, cfg.experiment_name = str(tmp_path), f'zoo_{method}_{uuid.uuid4().hex[:6]}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    step = runner.model.last_step
    assert step.batch.teacher_logits.shape == (2, 2, 19)
    assert step.batch.teacher_features[0][0].shape[1] == 2048  # R101's last stage
    assert step.batch.student_features[0].shape[1] == 512  # R18's last stage
    assert torch.isfinite(step.batch.logit_kd).all()
