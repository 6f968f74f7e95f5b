"""The real-Cityscapes configs (mmseg model-zoo teachers): every one parses and names the
zoo checkpoints; built with the checkpoints and data overridden, they train."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import CONFIGS, DEMO_TASKS, SEG_CONFIGS, train_zoo_config, zoo_config_overrides

ZOO_CONFIGS = sorted(glob.glob(osp.join(SEG_CONFIGS, 'cityscapes', 'kd_*_cityscapes.py')))
NO_DOWNLOAD = {'pretrained': None}  # no ImageNet weights can be fetched here
SMALL_DATA_CONFIG = osp.join(CONFIGS, '_base_', 'datasets', 'cityscapes_streets.py')


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
        if cfg.model.weighting.type == 'MetaWeightNet':  # no second derivative of SyncBN
            assert {v['type'] for v in cfg.model.student.cfg_options.values()} == {'BN'}


@pytest.mark.parametrize('method', ['aver', pytest.param('mtkd_rl', marks=pytest.mark.slow)])
def test_cityscapes_config_trains_with_overridden_checkpoints_and_data(
        method, zoo_seg_teacher_checkpoints, streets_root, tmp_path):
    """The full distiller of the real config (zoo R101 teachers, R18 student) on the
    generated data with its 64x128 training crops instead of 512x1024."""
    cfg = Config.fromfile(DEMO_TASKS['segmentation'].real_data_config.format(method))
    small = Config.fromfile(SMALL_DATA_CONFIG)
    cfg.merge_from_dict(dict(zoo_config_overrides(zoo_seg_teacher_checkpoints, streets_root), **{
        'model.student.cfg_options': dict(NO_DOWNLOAD, **{
            'data_preprocessor.size': small.crop_size}),
        'model.probe_shape': (3, 128, 256),
        'train_dataloader.dataset.pipeline': small.train_pipeline,
    }))
    runner = train_zoo_config(cfg, method, tmp_path)
    step = runner.model.last_step
    assert step.batch.teacher_logits.shape == (2, 2, 19)
    assert step.batch.teacher_features[0][0].shape[1] == 2048  # R101's last stage
    assert step.batch.student_features[0].shape[1] == 512  # R18's last stage
    assert torch.isfinite(step.batch.logit_kd).all()
