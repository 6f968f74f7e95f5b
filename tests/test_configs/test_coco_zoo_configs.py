"""The real-COCO configs (mmdet model-zoo teachers): every one parses and names the
zoo checkpoints; built with the checkpoints and data overridden, they train."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import DEMO_TASKS, DET_CONFIGS, train_zoo_config, zoo_config_overrides

ZOO_CONFIGS = sorted(glob.glob(osp.join(DET_CONFIGS, 'coco', 'kd_*_coco.py')))
SHAPES_CLASSES = ('disc', 'ring', 'square', 'frame', 'triangle', 'plus', 'cross', 'checker')
NO_DOWNLOAD = {'backbone.init_cfg': None}  # no ImageNet weights can be fetched here


@pytest.fixture(scope='session')
def zoo_teacher_checkpoints(tmp_path_factory):
    """Random weights in the zoo teachers' architectures (users download the real ones)."""
    from mmkd_ext.utils.model_builder import build_model
    folder = tmp_path_factory.mktemp('zoo_teachers')
    paths = []
    for depth in (50, 101):
        model, _ = build_model(f'mmdet::retinanet/retinanet_r{depth}_fpn_1x_coco.py',
                               cfg_options=NO_DOWNLOAD)
        paths.append(str(folder / f'retinanet_r{depth}.pth'))
        torch.save(dict(state_dict=model.state_dict()), paths[-1])
    return paths


def test_every_zoo_config_names_model_zoo_teachers():
    assert len(ZOO_CONFIGS) == 7
    for path in ZOO_CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.model.student.config == 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
        for teacher in cfg.model.teachers:
            assert teacher.config.startswith('mmdet::retinanet/')
            assert teacher.checkpoint.startswith('https://') and teacher.checkpoint.endswith('.pth')
        assert cfg.train_dataloader.dataset.type == 'CocoDataset'
        assert cfg.train_dataloader.dataset.data_root == 'data/coco/'


@pytest.mark.parametrize('method', ['aver', pytest.param('mtkd_rl', marks=pytest.mark.slow)])
def test_zoo_config_trains_with_overridden_checkpoints_and_data(
        method, zoo_teacher_checkpoints, coco_root, tmp_path):
    """The full distiller of the real config (zoo R50/R101 teachers, R18 student) on the
    generated data at its own 160 px instead of resized to 1333x800."""
    cfg = Config.fromfile(DEMO_TASKS['detection'].real_data_config.format(method))
    cfg.merge_from_dict(dict(zoo_config_overrides(zoo_teacher_checkpoints, coco_root), **{
        'model.student.cfg_options': NO_DOWNLOAD,
        'train_dataloader.dataset.ann_file': 'annotations/instances_train2017.json',
        'train_dataloader.dataset.data_prefix.img': 'train2017/',
        'train_dataloader.dataset.metainfo': dict(classes=SHAPES_CLASSES),
        'train_dataloader.dataset.pipeline.2.scale': (256, 160),
    }))
    assert cfg.train_dataloader.dataset.pipeline[2].type == 'Resize'
    runner = train_zoo_config(cfg, method, tmp_path)
    step = runner.model.last_step
    assert step.batch.teacher_logits.shape == (2, 2, 80)  # the zoo heads' 80 classes
    assert len(step.batch.student_features) == 5  # P3-P7
    assert torch.isfinite(step.batch.logit_kd).all()
