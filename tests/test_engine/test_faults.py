"""Faults: SIGKILL and --resume (an iteration-based loop; the shipped epoch-based
configs with their data loaders, RandomStateHook), data-loader workers seeded per
epoch and exiting with the main process, non-finite losses, atomic checkpoint
writes."""
import hashlib
import os
import os.path as osp
import random
import signal
import subprocess
import sys
import time
import uuid
from functools import partial

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset

from mmkd_ext.utils.random_state import capture_random_state, restore_random_state
from mmkd_ext.engine.hooks.worker_init import seed_train_worker
from mmkd_ext.utils import atomic_write, latest_checkpoint, safe_torch_load
from conftest import KD_CONFIG, ROOT, TEACHER_CONFIGS, kd_overrides, load_kd_config
from fault_hooks import PoisonTeacher

#: Per method: cfg-options that make a 6-iteration run exercise its learned parts.
RESUME_SETTINGS = {
    'aver': {},
    'mmkd': {
        'model.weighting.batch_size': 16,
        'custom_hooks': [dict(type='mmkd_ext.MetaWeightHook', interval=2, buffer_size=32,
                              quiz_batch_size=16)],
    },
    'mtkd_rl': {
        'model.weighting.warmup_epochs': 0.2,
        'custom_hooks': [dict(type='mmkd_ext.RLAgentHook', agent_interval=4)],
    },
}


def write_config(method, shapes_root, teacher_dir, path, kill_at=None):
    """A 6-iteration deterministic config, checkpoints at 3 and 6; optionally with
    a hook that SIGKILLs the run right after the checkpoint of iteration ``kill_at``."""
    cfg = Config.fromfile(KD_CONFIG.format(method))
    cfg.merge_from_dict(kd_overrides(shapes_root, teacher_dir, max_iters=6))
    cfg.merge_from_dict(RESUME_SETTINGS[method])
    cfg.randomness = dict(seed=0, deterministic=True)
    if kill_at is not None:
        cfg.custom_imports = dict(imports=['fault_hooks'], allow_failed_imports=False)
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='KillAfterCheckpoint', iteration=kill_at)]
    cfg.dump(str(path))
    return str(path)


def train(config, work_dir, *extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, osp.join(ROOT, 'tests')]))
    return subprocess.Popen(
        [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir), *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process):
    log, _ = process.communicate(timeout=600)
    return process.returncode, log


def learned_state(path):
    """Everything that must continue exactly: model (student, adapters, weighting
    parameters and buffers), optimizer, schedulers, and the hooks' own state (less
    their wall-clock statistics)."""
    ckpt = safe_torch_load(str(path), map_location='cpu')
    keys = ('state_dict', 'optimizer', 'param_schedulers', 'meta_weight_hook', 'rl_agent_hook')
    state = {k: ckpt[k] for k in keys if k in ckpt}
    for hook_state in (state.get('meta_weight_hook') or {}, ):
        for key in ('meta_seconds', 'train_seconds'):
            hook_state.pop(key, None)
    return state


def assert_bitwise_equal(a, b, where=''):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f'{where}: {sorted(a)} vs {sorted(b)}'
        for k in a:
            assert_bitwise_equal(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise_equal(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} vs {b!r}'


# An iteration-based loop without workers, killed between two checkpoints; MTKD-RL
# (pending transitions) in the default run. The shipped epoch-based configs with
# their workers: test_sigkill_after_an_epoch_then_resume_equals_an_uninterrupted_run.
@pytest.mark.parametrize('method', [pytest.param('aver', marks=pytest.mark.slow),
                                    pytest.param('mmkd', marks=pytest.mark.slow),
                                    'mtkd_rl'])
def test_sigkill_after_a_checkpoint_then_resume_equals_an_uninterrupted_run(
        method, shapes_root, teacher_dir, tmp_path):
    plain = write_config(method, shapes_root, teacher_dir, tmp_path / 'plain.py')
    killed = write_config(method, shapes_root, teacher_dir, tmp_path / 'killed.py', kill_at=3)
    runs = [train(plain, tmp_path / 'full'), train(killed, tmp_path / 'resumed')]
    (full_rc, full_log), (killed_rc, killed_log) = map(finish, runs)
    assert full_rc == 0, full_log[-3000:]
    assert killed_rc == -9, killed_log[-3000:]  # SIGKILL
    assert not osp.exists(tmp_path / 'resumed' / 'iter_6.pth')
    at_kill = safe_torch_load(str(tmp_path / 'resumed' / 'iter_3.pth'))
    if method == 'mmkd':  # the hard buffer holds samples to resume with
        assert len(at_kill['meta_weight_hook']['buffer']) > 0
    if method == 'mtkd_rl':  # transitions are pending: the agent updates at 4
        assert len(at_kill['rl_agent_hook']['store']) == 3

    rc, log = finish(train(plain, tmp_path / 'resumed', '--resume'))
    assert rc == 0, log[-3000:]
    assert 'resumed from the latest checkpoint' in log.lower() or 'resumed epoch' in log
    expected = learned_state(tmp_path / 'full' / 'iter_6.pth')
    got = learned_state(tmp_path / 'resumed' / 'iter_6.pth')
    assert_bitwise_equal(expected, got, method)
    if method != 'aver':
        hook_key = 'meta_weight_hook' if method == 'mmkd' else 'rl_agent_hook'
        assert hook_key in expected
        assert any(k.startswith('weighting.') for k in expected['state_dict'])


#: Training images of the runs (of the session's 160), the batch, so 2 iterations an
#: epoch; 2 epochs, validated after each.
NUM_TRAIN, BATCH, EPOCHS = 32, 16, 2
ITERS_PER_EPOCH = NUM_TRAIN // BATCH

#: Per method: what makes a 4-iteration run exercise its learned parts.
METHOD_SETTINGS = {
    'aver': {},
    'mmkd': {
        'model.weighting.batch_size': BATCH,
        'custom_hooks': [dict(type='mmkd_ext.MetaWeightHook', interval=2, buffer_size=32,
                              quiz_batch_size=BATCH)],
    },
    'mtkd_rl': {
        'custom_hooks': [dict(type='mmkd_ext.RLAgentHook', agent_interval=2)],
    },
}


def write_epoch_config(method, shapes_root, teacher_dir, path, num_workers=None,
                       persistent=None, kill_at=None):
    """The shipped config of ``method`` on the session's data, 2 epochs of 2
    iterations with its schedule, deterministic; the training and validation loaders
    as shipped (2 persistent workers) unless ``num_workers`` / ``persistent`` say
    otherwise. Optionally SIGKILLed right after iteration ``kill_at``."""
    cfg = Config.fromfile(KD_CONFIG.format(method))
    options = {
        'train_dataloader.dataset.data_root': shapes_root,
        'train_dataloader.dataset.indices': NUM_TRAIN,
        'train_dataloader.batch_size': BATCH,
        'val_dataloader.dataset.data_root': shapes_root,
        'val_dataloader.dataset.indices': 16,
        'test_dataloader.dataset.data_root': shapes_root,
        'train_cfg.max_epochs': EPOCHS,
        'train_cfg.val_interval': 1,  # validation between the checkpoint and the kill
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.checkpoint.max_keep_ckpts': -1,
        'default_hooks.logger.interval': 1,
        'randomness': dict(seed=0, deterministic=True),
    }
    for loader in ('train_dataloader', 'val_dataloader'):
        if num_workers is not None:
            options[f'{loader}.num_workers'] = num_workers
        if persistent is not None or num_workers == 0:
            options[f'{loader}.persistent_workers'] = bool(persistent) and num_workers != 0
    for idx, filename in enumerate(TEACHER_CONFIGS):
        options[f'model.teachers.{idx}.checkpoint'] = osp.join(teacher_dir, filename)
    cfg.merge_from_dict(options)
    cfg.merge_from_dict(METHOD_SETTINGS[method])
    if kill_at is not None:
        cfg.custom_imports = dict(imports=['mmkd_ext', 'fault_hooks'],
                                  allow_failed_imports=False)
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='KillAfterCheckpoint', iteration=kill_at)]
    cfg.dump(str(path))
    return str(path)


def check_sigkill_and_resume(method, shapes_root, teacher_dir, tmp_path, **loader):
    """Kill in the first iteration after ``epoch_1.pth`` (and its validation),
    resume, compare the final checkpoint with an uninterrupted run's."""
    plain = write_epoch_config(method, shapes_root, teacher_dir, tmp_path / 'plain.py',
                               **loader)
    killed = write_epoch_config(method, shapes_root, teacher_dir, tmp_path / 'killed.py',
                                kill_at=ITERS_PER_EPOCH + 1, **loader)
    runs = [train(plain, tmp_path / 'full'), train(killed, tmp_path / 'resumed')]
    (full_rc, full_log), (killed_rc, killed_log) = map(finish, runs)
    assert full_rc == 0, full_log[-3000:]
    assert killed_rc == -9, killed_log[-3000:]  # SIGKILL
    assert osp.exists(tmp_path / 'resumed' / 'epoch_1.pth')
    assert not osp.exists(tmp_path / 'resumed' / f'epoch_{EPOCHS}.pth')

    rc, log = finish(train(plain, tmp_path / 'resumed', '--resume'))
    assert rc == 0, log[-3000:]
    assert 'resumed epoch: 1' in log.lower() or 'resumed from' in log.lower(), log[-3000:]
    last = f'epoch_{EPOCHS}.pth'
    expected = learned_state(tmp_path / 'full' / last)
    got = learned_state(tmp_path / 'resumed' / last)
    assert_bitwise_equal(expected, got, method)
    states = [safe_torch_load(str(tmp_path / run / last))['random_state']
              for run in ('full', 'resumed')]
    assert_bitwise_equal(*states, f'{method}.random_state')


# The shipped loaders (2 persistent workers) for MMKD in the default run; every
# other (method, loader) pair is slow.
LOADERS = {'shipped': {}, 'no_workers': dict(num_workers=0),
           'workers_not_persistent': dict(num_workers=2, persistent=False)}
CASES = [pytest.param(method, loader, marks=() if (method, loader) == ('mmkd', 'shipped')
                      else pytest.mark.slow)
         for method in ('aver', 'mmkd', 'mtkd_rl') for loader in LOADERS
         if loader != 'workers_not_persistent' or method == 'aver']


@pytest.mark.parametrize('method,loader', CASES)
def test_sigkill_after_an_epoch_then_resume_equals_an_uninterrupted_run(
        method, loader, shapes_root, teacher_dir, tmp_path):
    check_sigkill_and_resume(method, shapes_root, teacher_dir, tmp_path, **LOADERS[loader])


def test_the_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # a cached Gaussian in NumPy's state
    torch.save({'random_state': capture_random_state()}, tmp_path / 'state.pth')
    expected = random.random(), np.random.randn(), torch.rand(2).tolist()
    random.random(), np.random.rand(5), torch.rand(7)
    restore_random_state(safe_torch_load(str(tmp_path / 'state.pth'))['random_state'])
    assert (random.random(), np.random.randn(), torch.rand(2).tolist()) == expected


class Draws(Dataset):
    """Each item: what the worker's Python, NumPy and torch generators draw."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return torch.tensor([random.random(), np.random.rand(), torch.rand(()).item()])


def epoch_draws(epochs, persistent, start=0):
    epoch = torch.zeros((), dtype=torch.int64).share_memory_()
    loader = DataLoader(Draws(), batch_size=2, num_workers=2, persistent_workers=persistent,
                        worker_init_fn=partial(seed_train_worker, seed=0, rank=0,
                                               parent_pid=os.getpid(), epoch=epoch))
    draws = []
    for n in range(start, start + epochs):
        epoch.fill_(n)
        draws.append(torch.cat(list(loader)))
    return draws


def test_workers_are_seeded_per_epoch_also_when_persistent():
    persistent = epoch_draws(3, persistent=True)
    assert not torch.equal(persistent[0], persistent[1])  # epochs draw differently
    assert not torch.equal(persistent[1], persistent[2])
    for n in range(3):  # as new workers started for that epoch (a resumed run)
        assert torch.equal(persistent[n], epoch_draws(1, persistent=False, start=n)[0])
    assert all(map(torch.equal, persistent, epoch_draws(3, persistent=False)))


BLOCKED_WORKERS = r"""
import os, sys, time
from functools import partial
import torch
from torch.utils.data import DataLoader, Dataset
from mmkd_ext.engine.hooks.worker_init import init_eval_worker, seed_train_worker

class Large(Dataset):  # batches larger than a pipe holds
    def __len__(self):
        return 10**6

    def __getitem__(self, index):
        return 'x' * 40000

parent = os.getpid()
if sys.argv[1] == 'train':
    init = partial(seed_train_worker, seed=0, rank=0, parent_pid=parent,
                   epoch=torch.zeros((), dtype=torch.int64).share_memory_())
else:
    init = partial(init_eval_worker, parent_pid=parent)
batches = iter(DataLoader(Large(), batch_size=2, num_workers=2, persistent_workers=True,
                          worker_init_fn=init))
next(batches)
print(' '.join(str(worker.pid) for worker in batches._workers), flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
@pytest.mark.parametrize('kind', ['train', 'eval'])
def test_workers_blocked_on_a_full_queue_exit_with_the_main_process(kind):
    """Workers whose batches fill the pipe to a main process that is then SIGKILLed:
    without the parent-death signal their queue's writer blocks them for good."""
    run = subprocess.Popen([sys.executable, '-c', BLOCKED_WORKERS, kind], cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
                           text=True)
    workers = [int(pid) for pid in run.stdout.readline().split()]
    try:
        assert len(workers) == 2
        time.sleep(1)  # the workers fill the queue
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
        assert not still_alive_after(workers, seconds=3)
    finally:
        kill_all(run, workers)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_a_worker_whose_parent_is_not_the_main_process_exits_with_the_main_process():
    """Under the forkserver start method a worker's parent is the fork server: the
    worker keeps running while the main process runs, and exits when it dies."""
    from mmkd_ext.engine.hooks import worker_init
    main = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
    worker = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time\n'
         'from mmkd_ext.engine.hooks.worker_init import exit_with_parent\n'
         'exit_with_parent(int(sys.argv[1])); print("armed", flush=True); time.sleep(120)',
         str(main.pid)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
        stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == 'armed'
        time.sleep(worker_init.WATCHDOG_INTERVAL + 0.5)
        assert worker.poll() is None  # the main process runs: so does the worker
        main.kill()
        main.wait(timeout=60)
        worker.wait(timeout=worker_init.WATCHDOG_INTERVAL + 10)
    finally:
        for process in (main, worker):
            if process.poll() is None:
                process.kill()


def still_alive_after(pids, seconds):
    """The processes of ``pids`` still running ``seconds`` from now (polled)."""
    deadline = time.time() + seconds
    while any(map(alive, pids)) and time.time() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def kill_all(run, pids):
    """Clean up after a test: SIGKILL ``pids`` and the process ``run``."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if run.poll() is None:
        run.kill()


def alive(pid):
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def children(pid):
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid and fields[0] != 'Z':
                found.append(int(entry))
    return found


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
@pytest.mark.parametrize('loop', ['epoch', pytest.param('iteration', marks=pytest.mark.slow)])
def test_sigkill_of_a_run_leaves_no_data_loader_worker(loop, shapes_root, teacher_dir,
                                                       tmp_path):
    """A run with the shipped loaders (2 persistent training workers) is SIGKILLed
    while training: its workers exit at once (torch's own check of the parent runs
    every 5 s, and does not end a worker blocked on a full queue). An iteration-based
    loop starts its workers before any hook runs: RandomStateHook restarts them."""
    config = write_epoch_config('aver', shapes_root, teacher_dir, tmp_path / 'plain.py')
    cfg = Config.fromfile(config)
    cfg.train_cfg.max_epochs = 50  # still training when killed
    if loop == 'iteration':
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=500, val_interval=10**6)
        cfg.param_scheduler = []
        cfg.default_hooks.checkpoint.by_epoch = False
        cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.dump(str(tmp_path / 'long.py'))
    run = train(str(tmp_path / 'long.py'), tmp_path / 'work')
    try:
        deadline = time.time() + 300
        workers = []
        while len(workers) < 2 and run.poll() is None and time.time() < deadline:
            time.sleep(0.5)
            workers = children(run.pid)
        assert len(workers) >= 2, run.communicate(timeout=60)[0][-3000:]
        time.sleep(2)  # the workers fill their queues while the main process trains
        workers = children(run.pid)
        os.kill(run.pid, signal.SIGKILL)
        run.communicate(timeout=60)
        left = still_alive_after(workers, seconds=3)
        assert not left, f'workers {left} of the killed run still run'
    finally:
        kill_all(run, children(run.pid) + workers)


def poisoned_runner(shapes_root, teacher_dir, work_dir, *hooks, poison=None, **options):
    """A 6-iteration AVER run whose teacher 'r18w16' outputs NaN from iteration 4."""
    cfg = load_kd_config('aver', shapes_root, teacher_dir, max_iters=6)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'poison_{uuid.uuid4().hex[:8]}'
    runner = Runner.from_cfg(cfg)
    for hook in (poison or PoisonTeacher(iteration=4, index=1), *hooks):
        runner.register_hook(hook)
    return runner


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class DigestAfter(Hook):
    """Records the SHA-256 of the checkpoint written at iteration ``n``."""
    priority = 'LOWEST'

    def __init__(self, n):
        self.n, self.digest = n, None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.n:
            self.digest = sha256(osp.join(runner.work_dir, f'iter_{self.n}.pth'))


def test_non_finite_loss_stops_naming_term_and_teacher_and_keeps_checkpoints(
        shapes_root, teacher_dir, tmp_path):
    digest = DigestAfter(3)
    runner = poisoned_runner(shapes_root, teacher_dir, tmp_path, digest)
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    assert runner.iter == 3
    message = str(err.value)
    assert "logit KD of teacher 'r18w16'" in message
    assert "teacher 'r18w24'" not in message  # the healthy teachers are not blamed
    assert 'SkipNonFiniteStepsHook' in message and 'intact' in message
    written = tmp_path / 'iter_3.pth'
    state = safe_torch_load(str(written))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert sha256(written) == digest.digest and latest_checkpoint(str(tmp_path)) == str(written)


def test_skip_hook_skips_non_finite_steps_and_counts_them(shapes_root, teacher_dir, tmp_path):
    from mmkd_ext.engine.hooks import SkipNonFiniteStepsHook
    hook = SkipNonFiniteStepsHook()
    runner = poisoned_runner(shapes_root, teacher_dir, tmp_path, hook)
    runner.train()  # runs to the end
    assert runner.iter == 6 and hook.skipped == 3
    assert runner.message_hub.get_scalar('train/skipped_steps').current() == 3
    at_3 = safe_torch_load(str(tmp_path / 'iter_3.pth'))
    at_6 = safe_torch_load(str(tmp_path / 'iter_6.pth'))
    params = {n for n, p in runner.model.named_parameters() if p.requires_grad}
    moved = [k for k in params if not torch.equal(at_3['state_dict'][k], at_6['state_dict'][k])]
    assert not moved, f'skipped steps changed {moved[:3]}'
    assert_bitwise_equal(at_3['optimizer']['state'], at_6['optimizer']['state'], 'optimizer')
    assert at_6['skip_non_finite_steps_hook'] == dict(skipped=3)


def test_skip_hook_with_gradient_accumulation_drops_only_the_bad_micro_step(
        shapes_root, teacher_dir, tmp_path):
    """Accumulating 2 steps: iteration 3 is non-finite, 4 is not, so the update at 4
    uses iteration 4's gradients alone; 5 and 6 are both non-finite: no update."""
    from mmkd_ext.engine.hooks import SkipNonFiniteStepsHook
    hook = SkipNonFiniteStepsHook()
    first = PoisonTeacher(iteration=3, index=1, until=4)
    runner = poisoned_runner(shapes_root, teacher_dir, tmp_path, hook,
                             PoisonTeacher(iteration=5, index=1), poison=first,
                             **{'optim_wrapper.accumulative_counts': 2,
                                'default_hooks.checkpoint.interval': 2,
                                'default_hooks.checkpoint.max_keep_ckpts': -1})
    runner.train()
    assert hook.skipped == 3
    states = {n: safe_torch_load(str(tmp_path / f'iter_{n}.pth'))['state_dict'] for n in (2, 4, 6)}
    params = [n for n, p in runner.model.named_parameters() if p.requires_grad]
    assert all(torch.isfinite(states[6][k]).all() for k in params)
    assert any(not torch.equal(states[2][k], states[4][k]) for k in params)  # stepped at 4
    assert all(torch.equal(states[4][k], states[6][k]) for k in params)  # not at 6


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    target = tmp_path / 'iter_2.pth'
    torch.save({'x': torch.ones(3)}, target)
    before = target.read_bytes()

    def crash(fd):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(OSError, match='disk full'):
        atomic_write(b'half a checkpoint', target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ['iter_2.pth']


def test_checkpoints_are_saved_through_the_atomic_backend(tmp_path):
    from mmengine.fileio import get_file_backend
    from mmengine.runner.checkpoint import save_checkpoint
    from mmkd_ext.utils import AtomicLocalBackend
    assert isinstance(get_file_backend(str(tmp_path / 'a.pth')), AtomicLocalBackend)
    save_checkpoint({'state_dict': {'w': torch.arange(4)}}, str(tmp_path / 'a.pth'))
    assert torch.equal(safe_torch_load(str(tmp_path / 'a.pth'))['state_dict']['w'],
                       torch.arange(4))
    with open(tmp_path / 'plain', 'w'):  # the mode of a file written without atomicity
        pass
    assert os.stat(tmp_path / 'a.pth').st_mode == os.stat(tmp_path / 'plain').st_mode


def test_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    assert latest_checkpoint(str(tmp_path)) is None
    older, newer = tmp_path / 'iter_8.pth', tmp_path / 'iter_12.pth'
    for path in (older, newer, tmp_path / 'best_accuracy_iter_4.pth'):
        torch.save({'a': 1}, path)
    os.utime(newer, (1, 1))  # copied without its time: the number decides, not mtime
    assert latest_checkpoint(str(tmp_path)) == str(newer)
    (tmp_path / 'last_checkpoint').write_text(str(older))
    assert latest_checkpoint(str(tmp_path)) == str(older)
    older.write_bytes(older.read_bytes()[:100])  # truncated (written without atomicity)
    assert latest_checkpoint(str(tmp_path)) == str(newer)
    (tmp_path / 'last_checkpoint').write_text('')  # torn pointer file
    assert latest_checkpoint(str(tmp_path)) == str(newer)


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one(tmp_path):
    """A process killed inside the write: the target keeps its old content, and
    --resume's choice skips the leftover temporary file (and removes it)."""
    torch.save({'step': 4}, tmp_path / 'iter_4.pth')
    script = (
        'import os, signal, torch\n'
        'import mmkd_ext.utils.atomic_io as io\n'
        'os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n'
        f'io.atomic_write(b"x" * 10**6, {str(tmp_path / "iter_8.pth")!r})\n')
    killed = subprocess.run([sys.executable, '-c', script], cwd=ROOT, timeout=300,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert killed.returncode == -9
    assert not (tmp_path / 'iter_8.pth').exists()
    assert any(name.endswith('.tmp') for name in os.listdir(tmp_path))
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    assert sorted(os.listdir(tmp_path)) == ['iter_4.pth']
