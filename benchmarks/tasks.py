"""The embedded tasks the demo, the benchmark and the tests run: dataset, models, metric."""
import os.path as osp
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from benchmarks.methods import METHOD_TABLE


class Run(NamedTuple):
    name: str          # shown in the table
    role: str          # 'teacher', 'student' or 'distilled'
    config: str
    export_as: Optional[str] = None  # teachers: file name under <work-root>/teachers
    method: Optional[str] = None     # distilled: the weighting's short name


class Pool(NamedTuple):
    """A benchmarked pool of another kind: the task's teachers and one more (of another
    dense-head family, or of another task), distilled by ``method`` with ``config``
    (the task's teachers first, in order, then the added one), and compared paired
    with ``method`` on the task's own pool."""
    key: str           # --methods
    name: str          # shown in the tables
    method: str        # the weighting it distils with, and the row it is paired with
    config: str
    teacher_task: str  # the task whose data and teacher schedule train the added teacher
    teacher: Run       # the added teacher (its config and checkpoint file name)


class Task(NamedTuple):
    dataset: str                     # shown in messages
    data_root: str
    work_root: str
    generate: Callable[[str], dict]  # writes the dataset under a root (idempotent)
    runs: List[Run]
    metric_key: str                  # in tools/test.py's metrics
    metric_name: str                 # in the table, in percent
    metric_scale: float              # to percent
    title: str
    data_options: Callable[[str], dict]  # cfg-options pointing a config at a data root
    # cfg-options of the benchmark's quick preset per role ('teacher', 'student': the
    # student alone and every distillation): shorter schedules, same decay shape.
    quick_schedule: Dict[str, dict]
    kd_config: str                   # the distillation configs, {} for the method's key
    # The same distillation on the real dataset with model-zoo teachers, {} for the key.
    real_data_config: Optional[str] = None
    # Pools with an added teacher, benchmarked when their key is among --methods.
    pools: Sequence[Pool] = ()

    @property
    def per_image(self) -> bool:
        """Whether the metric is a mean over images of a per-image outcome (top-1):
        then runs keep which images they got right, for a bootstrap over them."""
        return self.metric_key.startswith('accuracy/')

    def pool(self, key: str) -> Optional[Pool]:
        """The pool of ``key`` (None if the task has none of that key)."""
        return next((pool for pool in self.pools if pool.key == key), None)

    @property
    def teachers(self) -> List[Run]:
        return [r for r in self.runs if r.role == 'teacher']

    @property
    def teacher_configs(self) -> Dict[str, str]:
        """``{checkpoint file name: config}`` of the teachers, in config order."""
        return {run.export_as: run.config for run in self.teachers}

    def teacher_files(self, teacher_dir: str) -> List[str]:
        """The exported teacher checkpoints under ``teacher_dir``, in config order."""
        return [osp.join(teacher_dir, run.export_as) for run in self.teachers]

    @staticmethod
    def checkpoint_options(paths: Sequence[str]) -> Dict[str, str]:
        """cfg-options giving a distillation config's teachers these checkpoints, in
        order (``model.teachers.<i>.checkpoint``)."""
        return {f'model.teachers.{i}.checkpoint': path for i, path in enumerate(paths)}

    @property
    def student_config(self) -> str:
        """The config training the student alone."""
        return next(r.config for r in self.runs if r.role == 'student')

    def distill_config(self, method: str) -> str:
        """The config distilling the student with ``method`` (e.g. ``'aver'``)."""
        for run in self.runs:
            if run.method == method:
                return run.config
        raise KeyError(f'Unknown method {method!r}; choose from '
                       f'{[r.method for r in self.runs if r.method]}.')


def _data_root_options(root: str) -> dict:
    """cfg-options pointing every split's dataset at ``root``."""
    return {f'{split}_dataloader.dataset.data_root': root.rstrip('/') + '/'
            for split in ('train', 'val', 'test')}


def _coco_data_options(root: str) -> dict:
    """:func:`_data_root_options` plus the COCO evaluators' annotation files."""
    options = _data_root_options(root)
    for split in ('val', 'test'):
        options[f'{split}_evaluator.ann_file'] = osp.join(root, 'annotations',
                                                          'instances_val2017.json')
    return options


def distill_runs(kd_config: str) -> List[Run]:
    """The student distilled with every weighting method (``kd_config`` has {} for the
    method's key)."""
    return [Run(f'KD: {method.name}', 'distilled', kd_config.format(method.key),
                method=method.key) for method in METHOD_TABLE]


def _generator(name: str) -> Callable[..., dict]:
    """``mmkd_ext.synthetic_data.<name>``, imported when called (reading the task
    table imports nothing of the package)."""
    def generate(root: str, *args, **kwargs) -> dict:
        from mmkd_ext import synthetic_data
        return getattr(synthetic_data, name)(root, *args, **kwargs)
    return generate


def _epoch_schedule(epochs: int, **scheduler_options) -> dict:
    """cfg-options training for ``epochs`` epochs, evaluated once at the end, with
    the second LR scheduler (after the warm-up) given ``scheduler_options``."""
    return {'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs,
            **{f'param_scheduler.1.{k}': v for k, v in scheduler_options.items()}}


def _iter_schedule(iters: int) -> dict:
    """cfg-options training for ``iters`` iterations with the poly decay ending there."""
    return {'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
            'param_scheduler.1.end': iters}


def make_tasks(root: str) -> Dict[str, Task]:
    """The tasks of the demo and the benchmark, with config paths under ``root``."""
    cls, det = osp.join(root, 'configs/classification'), osp.join(root, 'configs/detection')
    seg = osp.join(root, 'configs/segmentation')
    cls_kd = f'{cls}/distill/kd_{{}}_r18w8_shapes10.py'
    det_kd = f'{det}/distill/kd_{{}}_retinanet_r18_coco_shapes.py'
    seg_kd = f'{seg}/distill/kd_{{}}_pspnet_r18_cityscapes_streets.py'
    best_classifier = Run('ResNet18-w24', 'teacher', f'{cls}/teachers/resnet18_w24_shapes10.py',
                          'resnet18_w24.pth')
    det_pools = (
        Pool('aver_with_gfl', 'AVER, + GFL R34-w32 teacher (another head family)', 'aver',
             f'{det}/distill/kd_aver_retinanet_gfl_to_r18_coco_shapes.py', 'detection',
             Run('GFL R34-w32', 'teacher', f'{det}/teachers/gfl_r34_w32_coco_shapes.py',
                 'gfl_r34_w32.pth')),
        Pool('aver_with_classifier',
             'AVER, + ResNet18-w24 of Shapes-10 (a classifier: feature teacher)', 'aver',
             f'{det}/distill/kd_aver_retinanet_r18_with_classifier_coco_shapes.py',
             'classification', best_classifier),
    )
    return {
        'classification': Task(
            'Shapes-10', 'data/shapes10', 'work_dirs/shapes10', _generator('generate_shapes10'), [
                best_classifier,
                Run('ResNet18-w16', 'teacher', f'{cls}/teachers/resnet18_w16_shapes10.py',
                    'resnet18_w16.pth'),
                Run('ResNet50-w8', 'teacher', f'{cls}/teachers/resnet50_w8_shapes10.py',
                    'resnet50_w8.pth'),
                Run('student alone', 'student', f'{cls}/students/resnet18_w8_shapes10.py'),
            ] + distill_runs(cls_kd), 'accuracy/top1', 'top-1 (%)', 1.0,
            'Multi-teacher distillation of a ResNet-18 (8 channels) on Shapes-10',
            _data_root_options, dict(teacher=_epoch_schedule(10, T_max=10),
                                     student=_epoch_schedule(5, T_max=5)), cls_kd),
        'detection': Task(
            'Shapes-COCO', 'data/coco_shapes', 'work_dirs/coco_shapes',
            _generator('generate_coco_shapes'), [
                Run('RetinaNet R34-w32', 'teacher',
                    f'{det}/teachers/retinanet_r34_w32_coco_shapes.py', 'retinanet_r34_w32.pth'),
                Run('RetinaNet R50-w16', 'teacher',
                    f'{det}/teachers/retinanet_r50_w16_coco_shapes.py', 'retinanet_r50_w16.pth'),
                Run('student alone', 'student',
                    f'{det}/students/retinanet_r18_w16_coco_shapes.py'),
            ] + distill_runs(det_kd), 'coco/bbox_mAP', 'bbox mAP (%)', 100.0,
            'Multi-teacher distillation of a RetinaNet-R18 (16 channels) on Shapes-COCO',
            _coco_data_options, dict(teacher=_epoch_schedule(8, milestones=[6]),
                                     student=_epoch_schedule(4, milestones=[3])), det_kd,
            f'{det}/coco/kd_{{}}_retinanet_r50_r101_to_r18_coco.py', det_pools),
        'segmentation': Task(
            'Cityscapes-Streets', 'data/cityscapes_streets', 'work_dirs/cityscapes_streets',
            _generator('generate_street_scenes'), [
                Run('PSPNet R34-w16', 'teacher',
                    f'{seg}/teachers/pspnet_r34_w16_cityscapes_streets.py', 'pspnet_r34_w16.pth'),
                Run('DeepLabV3 R50-w16', 'teacher',
                    f'{seg}/teachers/deeplabv3_r50_w16_cityscapes_streets.py',
                    'deeplabv3_r50_w16.pth'),
                Run('student alone', 'student',
                    f'{seg}/students/pspnet_r18_w8_cityscapes_streets.py'),
            ] + distill_runs(seg_kd), 'mIoU', 'mIoU (%)', 1.0,
            'Multi-teacher distillation of a PSPNet-R18 (8 channels) on Cityscapes-Streets',
            _data_root_options, dict(teacher=_iter_schedule(800), student=_iter_schedule(300)),
            seg_kd, f'{seg}/cityscapes/kd_{{}}_pspnet_deeplabv3_r101_to_r18_cityscapes.py'),
    }
