"""A GFL teacher config of the generated COCO data, trained and joined to the RetinaNet
teachers with head and feature KD."""
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import det_kd_overrides


def test_gfl_teacher_trains_and_teaches_retinanet_student_through_head_and_features(
        coco_root, det_teacher_dir, tmp_path):
    """The GFL teacher config trains as a plain mmdet config; its checkpoint then
    joins the two RetinaNet teachers: its one-anchor scores meet the student's best
    anchor per location in head KD, and its FPN levels the student's."""
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
    assert batch.feature_kd.shape == batch.logit_kd.shape == (4, 3)
    for term in (batch.feature_kd, batch.logit_kd):
        assert torch.isfinite(term).all() and (term > 0).all()
    scalars = runner.message_hub.log_scalars
    assert {'train/gfl_r34w32.feat', 'train/gfl_r34w32.kd', 'train/loss_kd'} <= set(scalars)


def test_classifier_config_teaches_the_detector_its_backbone_features(coco_root, det_teacher_dir,
                                                                      tmp_path):
    """The cross-task config: the classification demo's ResNet-18 (an mmpretrain
    classifier, here with initialised weights) joins the RetinaNet teachers as a
    feature teacher; the student trains and is tested through mmengine's Runner (what
    tools/train.py and tools/test.py run)."""
    from conftest import CONFIGS, DET_CONFIGS
    from mmkd_ext.utils.model_builder import save_initialised_checkpoint
    classifier = save_initialised_checkpoint(
        f'{CONFIGS}/classification/teachers/resnet18_w24_shapes10.py', str(tmp_path / 'cls.pth'))
    cfg = Config.fromfile(
        f'{DET_CONFIGS}/distill/kd_aver_retinanet_r18_with_classifier_coco_shapes.py')
    cfg.merge_from_dict(det_kd_overrides(coco_root, det_teacher_dir, max_iters=2))
    cfg.model.teachers[2].checkpoint = classifier
    cfg.work_dir, cfg.experiment_name = str(tmp_path / 'kd'), 'kd'
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    assert type(model.teachers[2]).__name__ == 'ImageClassifier'
    assert model.teacher_pool.feature_only == [False, False, True]
    batch = model.last_step.batch
    assert batch.logit_kd.shape == batch.feature_kd.shape == (4, 2)
    assert batch.feature_teacher_kd.shape == (4, 1) and (batch.feature_teacher_kd > 0).all()
    scalars = runner.message_hub.log_scalars
    assert {'train/cls_r18w24.feat', 'train/r34w32.kd'} <= set(scalars)
    assert 'train/cls_r18w24.kd' not in scalars
    metrics = runner.test()
    assert 'coco/bbox_mAP' in metrics
