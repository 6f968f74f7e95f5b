"""The detection and segmentation demo configs on generated data (COCO and Cityscapes
layouts), through MMEngine's runner and the tools; exported students in plain mmdet
and mmseg."""
import gc
import glob
import json
import re
import uuid
from typing import Callable, NamedTuple

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from benchmarks.methods import METHODS
from conftest import (DEMO_TASKS, DET_KD_CONFIG, DET_STUDENT_CONFIG, SEG_KD_CONFIG,
                      SEG_STUDENT_CONFIG, det_kd_overrides, run_tool, seg_kd_overrides)


class TaskConfigs(NamedTuple):
    kd_config: str           # with {} for the method
    student_config: str
    data_fixture: str
    teacher_fixture: str
    overrides: Callable      # (data root, teacher dir, **kwargs) -> cfg-options
    cli_schedule: dict       # cfg-options of a short tools/train.py run
    first_teacher: str
    num_feature_maps: int
    metric: str              # key in tools/test.py's metrics


TASKS = dict(
    detection=TaskConfigs(
        DET_KD_CONFIG, DET_STUDENT_CONFIG, 'coco_root', 'det_teacher_dir', det_kd_overrides,
        {'train_cfg.max_epochs': 1, 'param_scheduler': '[]'}, 'r34w32', 4,
        DEMO_TASKS['detection'].metric_key),
    segmentation=TaskConfigs(
        SEG_KD_CONFIG, SEG_STUDENT_CONFIG, 'streets_root', 'seg_teacher_dir', seg_kd_overrides,
        {'train_cfg.max_iters': 4, 'train_cfg.val_interval': 4,
         'default_hooks.checkpoint.interval': 4, 'param_scheduler': '[]'},
        'psp_r34w16', 1, DEMO_TASKS['segmentation'].metric_key),
)
# Every weighting runs on tiny models of both tasks in test_weightings_on_tasks.py; here
# each task's configs run AVER and one hook-driven method (MMKD for detection, MTKD-RL
# for segmentation; the tools tests below run CA-MKD), the rest as long tests.
FAST_METHODS = dict(detection=('aver', 'mmkd'), segmentation=('aver', 'mtkd_rl'))
TASK_METHODS = [
    pytest.param(task, method, marks=() if method in FAST_METHODS[task] else pytest.mark.slow)
    for task in sorted(TASKS) for method in METHODS]


@pytest.mark.parametrize('task,method', TASK_METHODS)
def test_every_weighting_trains_through_the_runner(task, method, request, tmp_path):
    spec = TASKS[task]
    cfg = Config.fromfile(spec.kd_config.format(method))
    cfg.merge_from_dict(spec.overrides(request.getfixturevalue(spec.data_fixture),
                                       request.getfixturevalue(spec.teacher_fixture),
                                       max_iters=2))
    if method == 'mmkd':  # a quiz batch of the training batch size, from the first step
        cfg.custom_hooks[0].update(interval=1, buffer_size=4, quiz_batch_size=4)
    cfg.work_dir, cfg.experiment_name = str(tmp_path), f'{method}_{uuid.uuid4().hex[:6]}'
    runner = Runner.from_cfg(cfg)
    teachers = [{k: v.clone() for k, v in t.state_dict().items()} for t in runner.model.teachers]
    runner.train()
    step = runner.model.last_step
    assert step.batch.logit_kd.shape == (4, 2)
    assert len(step.batch.student_features) == spec.num_feature_maps
    for before, teacher in zip(teachers, runner.model.teachers):
        assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in runner.model.modules())
    scalars = runner.message_hub.log_scalars
    assert {'train/loss_kd', 'train/loss_feat', f'train/{spec.first_teacher}.w_logit'} \
        <= set(scalars)


@pytest.fixture(scope='module', params=sorted(TASKS))
def trained(request, tmp_path_factory):
    """A short tools/train.py run of the CA-MKD config: (task, work dir, checkpoint,
    the cfg-options given)."""
    task, spec = request.param, TASKS[request.param]
    work_dir = tmp_path_factory.mktemp(f'{task}_cli')
    options = spec.overrides(request.getfixturevalue(spec.data_fixture),
                             request.getfixturevalue(spec.teacher_fixture))
    options.update(spec.cli_schedule)
    args = ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    result = run_tool('tools/train.py', spec.kd_config.format('confidence'), '--work-dir',
                      str(work_dir), *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    return task, work_dir, checkpoint, args


def test_test_tool_reports_the_students_metric(trained):
    task, work_dir, checkpoint, args = trained
    metrics = work_dir / 'metrics.json'
    result = run_tool('tools/test.py', TASKS[task].kd_config.format('confidence'), checkpoint,
                      '--work-dir', str(work_dir), '--metrics-json', str(metrics), *args)
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(metrics.read_text())
    scale = 100.0 / DEMO_TASKS[task].metric_scale  # mmseg reports percent, mmdet fractions
    assert 0.0 <= values[TASKS[task].metric] <= scale


class PlainInference(NamedTuple):
    """Plain mmdet / mmseg code (no mmkd_ext import) that loads the exported student
    with the library's own API and runs it on one validation image."""
    imports: str             # binds `init` and `infer`, may adjust `cfg`
    report: str              # prints a line about `result` and `model`
    expected: str            # regular expression the printed line matches
    images: str              # glob of validation images under the data root
    weight: str              # a student weight compared with the distilled checkpoint


PLAIN_INFERENCE = dict(
    detection=PlainInference(
        'from mmdet.apis import init_detector as init, inference_detector as infer\n'
        'cfg.test_dataloader.dataset.type = "CocoDataset"\n',
        'print("OUT", len(result.pred_instances), model.dataset_meta["classes"][0])\n',
        r'OUT \d+ disc', 'val2017/*.jpg', 'bbox_head.retina_cls.weight'),
    segmentation=PlainInference(
        'from mmseg.apis import init_model as init, inference_model as infer\n',
        'print("OUT", tuple(result.pred_sem_seg.data.shape), model.dataset_meta["classes"][0])\n',
        r'OUT \(1, 128, 256\) road', 'leftImg8bit/val/*/*_leftImg8bit.png',
        'decode_head.conv_seg.weight'),
)


def test_exported_student_runs_in_plain_library(trained, request, tmp_path):
    task, _, checkpoint, _ = trained
    plain, spec = PLAIN_INFERENCE[task], TASKS[task]
    out = tmp_path / 'student.pth'
    result = run_tool('tools/export_student.py', checkpoint, str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    data_root = request.getfixturevalue(spec.data_fixture)
    image = sorted(glob.glob(f'{data_root}/{plain.images}'))[0]
    script = ('from mmengine.config import Config\n'
              f'cfg = Config.fromfile({spec.student_config!r})\n'
              'cfg.pop("custom_imports")\n' + plain.imports +
              f'model = init(cfg, {str(out)!r}, device="cpu")\n'
              f'result = infer(model, {image!r})\n' + plain.report)
    result = run_tool('-c', script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(plain.expected + '$', result.stdout.strip()), result.stdout[-500:]
    exported = torch.load(out, weights_only=True)['state_dict']
    distilled = torch.load(checkpoint, weights_only=False)['state_dict']
    assert torch.equal(exported[plain.weight], distilled[f'student.{plain.weight}'])


class _CollectGarbage(Hook):
    """Collects garbage before every iteration: the stale data iterator that
    RandomStateHook replaces in an iteration-based loop is then gone at once."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        gc.collect()


def test_an_iteration_based_config_trains_with_persistent_workers(streets_root, tmp_path):
    """The segmentation configs (IterBasedTrainLoop, InfiniteSampler, two persistent
    workers) train past the batches the first iterator prefetched: RandomStateHook
    restarts the workers without closing the sampler's shared generator of indices."""
    from conftest import SEG_STUDENT_CONFIG
    cfg = Config.fromfile(SEG_STUDENT_CONFIG)
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': streets_root + '/',
        'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 2,
        'train_dataloader.persistent_workers': True,
        'train_cfg.max_iters': 6, 'train_cfg.val_interval': 10**6, 'param_scheduler': [],
        'val_dataloader': None, 'val_cfg': None, 'val_evaluator': None,
        'test_dataloader': None, 'test_cfg': None, 'test_evaluator': None,
        'default_hooks.checkpoint.interval': 10**6,
    })
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(_CollectGarbage())
    runner.train()
    assert runner.iter == 6  # more than the 2 workers x 2 batches prefetched
