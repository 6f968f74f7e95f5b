"""Two CPU processes (torchrun, gloo): every weighting method on every task ends with
identical parameters on both ranks, and the logged per-teacher values are averaged
over ranks."""
import json
import os
import subprocess
import sys

import pytest
import torch

from benchmarks.methods import METHODS
from conftest import (DET_KD_CONFIG, KD_CONFIG, ROOT, SEG_KD_CONFIG, det_kd_overrides,
                      kd_overrides, seg_kd_overrides)

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason='covers the CPU (gloo) path')


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def method_options(method: str, batch_size: int) -> dict:
    """Settings that make a 4-iteration run update each method's learned parts."""
    if method == 'mmkd':
        return {'custom_hooks': [dict(type='mmkd_ext.MetaWeightHook', interval=2,
                                      buffer_size=2 * batch_size, quiz_batch_size=batch_size)],
                'model.weighting.batch_size': batch_size}
    if method.startswith('mtkd_rl'):
        return {'model.weighting.warmup_epochs': 0,
                'custom_hooks': [dict(type='mmkd_ext.RLAgentHook', agent_interval=2)]}
    return {}


def launch(jobs, tmp_path):
    """Run ``[(config, options)]`` in one 2-process launch (tests/dist_state_driver.py)."""
    specs = [dict(config=config, work_dir=str(tmp_path / f'job{i}'), options=options)
             for i, (config, options) in enumerate(jobs)]
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'tests')]))
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
         '--master_port', str(free_port()), os.path.join(ROOT, 'tests', 'dist_state_driver.py'),
         json.dumps(specs)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return result, specs


def train_on_two_ranks(jobs, tmp_path):
    """Per job, each rank's ``rank<r>.pth`` (see tests/dist_state_driver.py)."""
    result, specs = launch(jobs, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return [[torch.load(f'{spec["work_dir"]}/rank{r}.pth') for r in range(2)] for spec in specs]


def poisoned_on_rank_1(options: dict, *hooks) -> dict:
    """``options`` plus a teacher that outputs NaN at iteration 2 on rank 1 only."""
    return dict(options, custom_imports=dict(imports=['fault_hooks'], allow_failed_imports=False),
                custom_hooks=[*hooks, dict(type='PoisonTeacher', iteration=2, until=3, rank=1)])


def assert_ranks_agree(method, ranks):
    first, second = ranks
    # Parameters are replicated; BN statistics stay per rank (no buffer broadcast on CPU).
    params = [k for k in first['state'] if 'running_' not in k and 'num_batches' not in k]
    differ = [k for k in params if not torch.equal(first['state'][k], second['state'][k])]
    assert not differ, f'{method}: ranks differ in {differ[:5]}'
    assert any(k.startswith('adapters.') for k in params)
    if method in ('mmkd', 'mtkd_rl', 'mtkd_rl_stochastic'):
        assert any(k.startswith('weighting.') for k in params), method
    if method == 'mmkd':  # one hard buffer for all ranks: a checkpoint holds it whole
        mine, other = first['hooks']['MetaWeightHook'], second['hooks']['MetaWeightHook']
        assert len(mine['buffer']) > 0 and torch.equal(mine['buffer'], other['buffer'])
        assert torch.equal(mine['generator'], other['generator'])
    # Teachers are neither in the DDP-wrapped module nor in the state dict.
    assert not any('teacher' in k for k in first['wrapped'] + list(first['state']))
    if method == 'mmkd':
        assert 'train/meta_loss' in first['logs']
    if method.startswith('mtkd_rl'):
        assert 'train/agent_loss' in first['logs']
    teacher_logs = [{k: v for k, v in rank['logs'].items()
                     if k.split('/')[1].split('.')[0] in rank['teachers']} for rank in ranks]
    assert any(k.endswith('.w_logit') for k in teacher_logs[0]), f'{method}: no weights logged'
    # The ranks train on different samples, so their own KD terms differ: equal logs
    # mean the values were averaged over ranks.
    assert teacher_logs[0] == teacher_logs[1], f'{method}: logged values differ between ranks'


def test_every_weighting_classification(shapes_root, teacher_dir, tmp_path):
    jobs = []
    for method in METHODS:
        options = kd_overrides(shapes_root, teacher_dir, batch_size=8, max_iters=4)
        options.update(method_options(method, 8), randomness=dict(seed=0))
        jobs.append((KD_CONFIG.format(method), options))
    # A non-finite step on one rank only: both ranks skip it together.
    skip = dict(type='mmkd_ext.SkipNonFiniteStepsHook')
    jobs.append((KD_CONFIG.format('aver'), poisoned_on_rank_1(jobs[0][1], skip)))
    *results, skipped = train_on_two_ranks(jobs, tmp_path)
    for method, ranks in zip(METHODS, results):
        assert_ranks_agree(method, ranks)
    assert_ranks_agree('aver, one step skipped', skipped)
    assert all(rank['logs']['train/skipped_steps'][-1] == 1 for rank in skipped)


def test_a_non_finite_step_on_one_rank_stops_both(shapes_root, teacher_dir, tmp_path):
    options = kd_overrides(shapes_root, teacher_dir, batch_size=8, max_iters=4)
    result, _ = launch([(KD_CONFIG.format('aver'), poisoned_on_rank_1(options))], tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    for rank in (0, 1):  # rank 0 stops too, instead of waiting for rank 1 forever
        assert (f"[rank{rank}]: FloatingPointError: Non-finite training terms: logit KD of "
                "teacher 'r18w16'") in log, log[-4000:]


TASKS = dict(
    detection=(DET_KD_CONFIG, det_kd_overrides, 'coco_root', 'det_teacher_dir'),
    segmentation=(SEG_KD_CONFIG, seg_kd_overrides, 'streets_root', 'seg_teacher_dir'),
)
FAST_METHODS = ('aver', 'mmkd', 'mtkd_rl')


OTHER_METHODS = tuple(m for m in METHODS if m not in FAST_METHODS)


# Segmentation with the hook-driven methods runs in `make test`; the rest in `make test-all`.
@pytest.mark.parametrize('task,methods', [
    pytest.param('segmentation', FAST_METHODS, id='segmentation-aver-mmkd-mtkd_rl'),
    pytest.param('detection', FAST_METHODS, id='detection-aver-mmkd-mtkd_rl',
                 marks=pytest.mark.slow),
    *[pytest.param(task, OTHER_METHODS, id=f'{task}-others', marks=pytest.mark.slow)
      for task in sorted(TASKS)]])
def test_weightings_on_dense_tasks(task, methods, request, tmp_path):
    config, overrides, data, teachers = TASKS[task]
    jobs = []
    for method in methods:
        options = overrides(request.getfixturevalue(data), request.getfixturevalue(teachers),
                            batch_size=2, max_iters=2)
        options.update(method_options(method, 2), randomness=dict(seed=0))
        jobs.append((config.format(method), options))
    for method, ranks in zip(methods, train_on_two_ranks(jobs, tmp_path)):
        assert_ranks_agree(f'{task}/{method}', ranks)
