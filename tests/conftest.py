"""Shared fixtures: a small Shapes-10 copy, teacher checkpoints from the real configs,
and tiny mmpretrain models for unit tests."""
import copy
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from benchmarks.tasks import make_tasks

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs')
DEMO_TASKS = make_tasks(ROOT)  # the task table: configs, teachers, data
KD_CONFIG = DEMO_TASKS['classification'].kd_config  # {} for the method's key
TEACHER_CONFIGS = DEMO_TASKS['classification'].teacher_configs
STUDENT_CONFIG = DEMO_TASKS['classification'].student_config

if os.environ.get('PYTEST_XDIST_WORKER'):
    # `make test` runs two pytest-xdist workers on the machine's two cores: each
    # worker, and each tool it starts, computes on one thread.
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


#: Modules that start training processes, longest first: under pytest-xdist (one
#: module a worker) they start first, so that short modules fill the end of the run.
LONGEST_MODULES = ('test_distributed.py', 'test_tools.py', 'test_faults.py',
                   'test_task_configs.py', 'test_teacher_diagnostics.py', 'test_mtkd_rl.py',
                   'test_benchmark.py', 'test_mmkd.py', 'test_mmkd_hypergradients.py',
                   'test_paired_seeds.py', 'test_mmkd_second_order.py', 'test_registry.py')


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_MODULES.index(name) if name in LONGEST_MODULES else len(LONGEST_MODULES)
    items.sort(key=rank)  # stable: the order within a module is kept


def generated_dataset(tmp_path_factory, task, num_train, num_val):
    """A small copy of a demo task's dataset (seed 0) in the session's temporary folder."""
    root = str(tmp_path_factory.mktemp(osp.basename(DEMO_TASKS[task].data_root)))
    DEMO_TASKS[task].generate(root, num_train=num_train, num_val=num_val, seed=0)
    return root


def demo_teacher_checkpoints(tmp_path_factory, task):
    """Checkpoints of a demo task's teachers (randomly initialised, seeded by order)."""
    folder = tmp_path_factory.mktemp(osp.basename(DEMO_TASKS[task].data_root) + '_teachers')
    return save_checkpoints(DEMO_TASKS[task].teacher_configs, folder)


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """Shapes-10 with 160 train / 80 val images."""
    return generated_dataset(tmp_path_factory, 'classification', 160, 80)


@pytest.fixture(scope='session')
def teacher_dir(tmp_path_factory):
    """Checkpoints of the three demo teachers."""
    return demo_teacher_checkpoints(tmp_path_factory, 'classification')


def kd_overrides(shapes_root, teacher_dir, batch_size=16, max_iters=None,
                 teachers=TEACHER_CONFIGS):
    """cfg-options that point a demo KD config at the test data and teachers."""
    options = {
        'train_dataloader.dataset.data_root': shapes_root,
        'val_dataloader.dataset.data_root': shapes_root,
        'test_dataloader.dataset.data_root': shapes_root,
        'train_dataloader.batch_size': batch_size,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'default_hooks.logger.interval': 1,
    }
    for idx, filename in enumerate(teachers):
        options[f'model.teachers.{idx}.checkpoint'] = osp.join(teacher_dir, filename)
    if max_iters is not None:
        options.update({
            'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10**6),
            'param_scheduler': [],
            'default_hooks.checkpoint': dict(type='CheckpointHook', interval=max_iters // 2
                                             if max_iters > 1 else 1, by_epoch=False),
        })
    return options


def cli_options(shapes_root, teacher_dir):
    """``--cfg-options`` of a one-epoch distillation through tools/train.py."""
    options = kd_overrides(shapes_root, teacher_dir, batch_size=32)
    options.update({'train_cfg.max_epochs': 1, 'param_scheduler': '[]'})
    return ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]


def load_kd_config(method, shapes_root, teacher_dir, **kwargs):
    from mmengine.config import Config
    cfg = Config.fromfile(KD_CONFIG.format(method))
    cfg.merge_from_dict(kd_overrides(shapes_root, teacher_dir, **kwargs))
    return cfg


def run_tool(*args, timeout=600):
    """Run ``python tools/<args>`` from the project root; returns CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, timeout=timeout,
                          capture_output=True, text=True)


PREPROCESSOR = dict(type='ClsDataPreprocessor', num_classes=10, mean=[127.5] * 3,
                    std=[64.0] * 3, to_rgb=True)


def tiny_classifier(width=4, num_classes=10, preprocessor=PREPROCESSOR):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=width, base_channels=width),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=8 * width),
        data_preprocessor=copy.deepcopy(preprocessor))


def save_checkpoint(model_spec, path, seed=0):
    from mmkd_ext.utils.model_builder import save_initialised_checkpoint
    torch.manual_seed(seed)
    return save_initialised_checkpoint(model_spec, path)


def save_checkpoints(configs, folder):
    """``{file name: config}`` -> initialised checkpoints in ``folder`` (seeded by order)."""
    for seed, (filename, config) in enumerate(configs.items()):
        save_checkpoint(config, folder / filename, seed)
    return str(folder)


@pytest.fixture
def two_teachers(tmp_path):
    """Two tiny teachers (8 and 6 base channels) with saved checkpoints."""
    return [
        dict(name='a', config=tiny_classifier(8),
             checkpoint=save_checkpoint(tiny_classifier(8), tmp_path / 'a.pth', 1)),
        dict(name='b', config=tiny_classifier(6),
             checkpoint=save_checkpoint(tiny_classifier(6), tmp_path / 'b.pth', 2)),
    ]


def make_distiller(teachers, **kwargs):
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    kwargs.setdefault('feature_kd', dict(weight=2.0))
    torch.manual_seed(0)
    return MultiTeacherDistiller(student=tiny_classifier(4), teachers=teachers, **kwargs)


def make_batch(distiller, batch_size=4, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 32, 32), generator=g).float() for _ in range(batch_size)]
    samples = [DataSample().set_gt_label(i % 10) for i in range(batch_size)]
    data = distiller.data_preprocessor(dict(inputs=images, data_samples=samples), True)
    return data['inputs'], data['data_samples']


DET_CONFIGS = osp.join(CONFIGS, 'detection')
DET_KD_CONFIG = DEMO_TASKS['detection'].kd_config
DET_TEACHER_CONFIGS = DEMO_TASKS['detection'].teacher_configs
DET_STUDENT_CONFIG = DEMO_TASKS['detection'].student_config


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory):
    """Shapes-COCO with 24 train / 12 val images of 160 px."""
    return generated_dataset(tmp_path_factory, 'detection', 24, 12)


@pytest.fixture(scope='session')
def det_teacher_dir(tmp_path_factory):
    """Checkpoints of the two detection demo teachers."""
    return demo_teacher_checkpoints(tmp_path_factory, 'detection')


def det_kd_overrides(coco_root, det_teacher_dir, batch_size=4, max_iters=None,
                     teachers=DET_TEACHER_CONFIGS):
    """cfg-options that point a detection KD config at the test data and teachers."""
    options = kd_overrides(coco_root + '/', det_teacher_dir, batch_size, max_iters,
                           teachers=teachers)
    for split in ('val', 'test'):
        options[f'{split}_evaluator.ann_file'] = coco_root + '/annotations/instances_val2017.json'
    return options


SEG_CONFIGS = osp.join(CONFIGS, 'segmentation')
SEG_KD_CONFIG = DEMO_TASKS['segmentation'].kd_config
SEG_TEACHER_CONFIGS = DEMO_TASKS['segmentation'].teacher_configs
SEG_STUDENT_CONFIG = DEMO_TASKS['segmentation'].student_config


@pytest.fixture(scope='session')
def streets_root(tmp_path_factory):
    """Cityscapes-Streets with 16 train / 8 val images of 128x256."""
    return generated_dataset(tmp_path_factory, 'segmentation', 16, 8)


@pytest.fixture(scope='session')
def seg_teacher_dir(tmp_path_factory):
    """Checkpoints of the two segmentation demo teachers."""
    return demo_teacher_checkpoints(tmp_path_factory, 'segmentation')


def seg_kd_overrides(streets_root, seg_teacher_dir, batch_size=4, max_iters=None,
                     teachers=SEG_TEACHER_CONFIGS):
    """cfg-options that point a segmentation config at the test data and teachers."""
    return kd_overrides(streets_root + '/', seg_teacher_dir, batch_size, max_iters,
                        teachers=teachers)


@pytest.fixture
def det_teachers(tmp_path):
    """Two tiny RetinaNets (12 and 8 base channels) with saved checkpoints."""
    from tiny_models import tiny_retinanet
    return [dict(name=f't{w}', config=tiny_retinanet(w),
                 checkpoint=save_checkpoint(tiny_retinanet(w), tmp_path / f'{w}.pth', w))
            for w in (12, 8)]


@pytest.fixture
def seg_teachers(tmp_path):
    """A tiny PSPNet at output stride 8 and a tiny DeepLabV3 (ASPP) at output stride 16."""
    from tiny_models import tiny_segmentor
    specs = [('psp', tiny_segmentor(12, 'PSPHead', 8)), ('aspp', tiny_segmentor(12, 'ASPPHead', 16))]
    return [dict(name=name, config=spec,
                 checkpoint=save_checkpoint(spec, tmp_path / f'{name}.pth', seed))
            for seed, (name, spec) in enumerate(specs)]


def zoo_config_overrides(teacher_checkpoints, data_root):
    """cfg-options shared by the real-data (model-zoo) config tests: stand-in teacher
    checkpoints, the generated data at ``data_root``, one training iteration, no
    validation."""
    options = {f'model.teachers.{i}.checkpoint': path
               for i, path in enumerate(teacher_checkpoints)}
    options.update({
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': data_root + '/',
        'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1,
                          val_interval=10**6),
        'param_scheduler': [],
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10**6, by_epoch=False),
        'val_dataloader': None, 'val_cfg': None, 'val_evaluator': None,
    })
    return options


def train_zoo_config(cfg, method, work_dir):
    """Train a real-data config as overridden (MTKD-RL acting from the first
    iteration); returns the runner."""
    import uuid

    from mmengine.runner import Runner
    if method == 'mtkd_rl':
        cfg.model.weighting.warmup_epochs = 0
    cfg.work_dir, cfg.experiment_name = str(work_dir), f'zoo_{method}_{uuid.uuid4().hex[:6]}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner
