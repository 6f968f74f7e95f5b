"""Runs of one seed are paired: the student alone and the student of every weighting
start from the same weights and see the same batches (order and augmentation), so
the benchmark's per-seed differences between methods measure the methods."""
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import KD_CONFIG, STUDENT_CONFIG, kd_overrides

#: Batches compared per run.
BATCHES = 3


class _Stop(Exception):
    pass


class FirstSteps(Hook):
    """Keeps the student's weights before its first step and the first batches' images
    and sample indices, then stops training."""
    priority = 'VERY_HIGH'  # before any method's hook acts on the batch

    def __init__(self):
        self.weights, self.batches = None, []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.weights is None:
            model = getattr(runner.model, 'student', runner.model)
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.batches.append((torch.stack(data_batch['inputs']).clone(),
                             [s.metainfo['sample_idx'] for s in data_batch['data_samples']]))
        if len(self.batches) == BATCHES:
            raise _Stop


def first_steps(config: str, shapes_root: str, teacher_dir: str, seed: int,
                work_dir: str) -> FirstSteps:
    cfg = Config.fromfile(config)
    options = kd_overrides(shapes_root, teacher_dir)
    if 'teachers' not in cfg.model:  # the student alone
        options = {k: v for k, v in options.items() if not k.startswith('model.')}
    if cfg.model.get('weighting', {}).get('type') == 'MetaWeightNet':  # batches of 16
        options.update({'model.weighting.batch_size': 16, 'custom_hooks': [dict(
            type='mmkd_ext.MetaWeightHook', interval=2, buffer_size=32, quiz_batch_size=16)]})
    cfg.merge_from_dict(options)
    # Augmentation in two workers, as the configs have it (per-epoch worker seeding).
    cfg.merge_from_dict({'train_dataloader.num_workers': 2, 'randomness.seed': seed})
    cfg.work_dir = work_dir
    cfg.experiment_name = f'paired_{seed}_{abs(hash(config))}'
    cfg.visualizer.name = cfg.experiment_name
    runner = Runner.from_cfg(cfg)
    hook = FirstSteps()
    runner.register_hook(hook)
    with pytest.raises(_Stop):
        runner.train()
    return hook


def assert_same_start(a: FirstSteps, b: FirstSteps) -> None:
    differing = [k for k in a.weights if not torch.equal(a.weights[k], b.weights[k])]
    assert not differing, f'initial student weights differ: {differing[:5]}'
    for (images_a, indices_a), (images_b, indices_b) in zip(a.batches, b.batches):
        assert indices_a == indices_b  # data order
        assert torch.equal(images_a, images_b)  # augmentation (random crop, flip)


def test_one_seed_pairs_the_student_alone_and_every_weighting(shapes_root, teacher_dir,
                                                              tmp_path):
    """AVER builds adapters, MMKD two weight nets besides: both start like the
    student alone."""
    runs = {name: first_steps(config, shapes_root, teacher_dir, 3, str(tmp_path / name))
            for name, config in (('alone', STUDENT_CONFIG),
                                 ('aver', KD_CONFIG.format('aver')),
                                 ('mmkd', KD_CONFIG.format('mmkd')))}
    for name in ('aver', 'mmkd'):
        assert_same_start(runs['alone'], runs[name])
    # The first batches are augmented (crops differ from the plain images) and a seed
    # is not a constant: another seed starts elsewhere.
    other = first_steps(STUDENT_CONFIG, shapes_root, teacher_dir, 4, str(tmp_path / 'other'))
    assert not torch.equal(other.weights['backbone.conv1.weight'],
                           runs['alone'].weights['backbone.conv1.weight'])
    assert other.batches[0][1] != runs['alone'].batches[0][1]
