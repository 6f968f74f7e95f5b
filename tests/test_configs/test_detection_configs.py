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
