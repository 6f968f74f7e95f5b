"""One experiment: train a config with ``tools/train.py`` and evaluate its last
checkpoint with ``tools/test.py``, each in its own process, as a user runs them.

Shared by the demo and the benchmark. The outcome is cached as JSON in the work
directory, so a finished experiment is not run again; an interrupted one continues
from its newest checkpoint (``tools/train.py --resume``).
"""
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from mmkd_ext.utils.atomic_io import atomic_write
from mmkd_ext.utils.batch_stats import BATCH_STATS_PREFIX

#: MMEngine's progress lines in a training log.
PROGRESS_MARKERS = ('Epoch(', 'Iter(')


def progress_echo(indent: str = '    ', width: int = 150) -> Callable[[str], None]:
    """An ``echo`` for :func:`run_logged` printing MMEngine's progress lines only."""
    def echo(line: str) -> None:
        if any(marker in line for marker in PROGRESS_MARKERS):
            print(indent + line[-width:], flush=True)
    return echo


def absolute_paths(args, names) -> None:
    """Make the path arguments ``names`` of parsed ``args`` absolute, as the user gave
    them relative to the current directory, before a tool changes directory."""
    for name in names:
        if getattr(args, name):
            setattr(args, name, osp.abspath(getattr(args, name)))


class ExperimentFailed(RuntimeError):
    """A tool exited non-zero; ``log_path`` holds its output."""

    def __init__(self, message: str, log_path: str):
        super().__init__(message)
        self.log_path = log_path


def run_logged(cmd: List[str], log_path: str, cwd: str,
               echo: Optional[Callable[[str], None]] = None,
               env: Optional[Dict[str, str]] = None) -> float:
    """Run ``cmd``, keep its full output in ``log_path``, pass each line to ``echo``;
    raise :class:`ExperimentFailed` if it exits non-zero.

    Returns:
        The process's peak resident set size in MiB (Linux ``wait4``; its data-loader
        workers are separate processes and not included).
    """
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        for line in proc.stdout:
            log.write(line)
            if echo is not None:
                echo(line.rstrip())
        if hasattr(os, 'wait4'):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = (os.WEXITSTATUS(status) if os.WIFEXITED(status)
                               else -os.WTERMSIG(status))
            peak_mib = usage.ru_maxrss / 1024
        else:
            proc.wait()
            peak_mib = float('nan')
    if proc.returncode != 0:
        raise ExperimentFailed(
            f'{osp.basename(cmd[1])} exited with {proc.returncode}: '
            f'{last_error_line(log_path)} (full output: {log_path})', log_path)
    return peak_mib


def last_error_line(log_path: str) -> str:
    """The last line of a log that names an error, or its last line."""
    with open(log_path, errors='replace') as f:
        lines = [line.strip() for line in f if line.strip()]
    errors = [line for line in lines if 'Error' in line or 'error:' in line]
    return (errors or lines or ['no output'])[-1][-300:]


def training_log_figures(work_dir: str) -> dict:
    """Median seconds per training iteration and, on CUDA, the peak memory (MiB) that
    MMEngine logged in the newest ``vis_data/scalars.json`` of ``work_dir``."""
    from benchmarks.plotting import find_scalars
    seconds, memory = [], []
    with open(find_scalars(work_dir)) as f:
        for line in f:
            record = json.loads(line)
            if 'loss' in record and 'time' in record:  # a training record
                seconds.append(record['time'])
                if 'memory' in record:
                    memory.append(record['memory'])
    return dict(s_per_iter=statistics.median(seconds) if seconds else None,
                gpu_peak_mib=max(memory) if memory else None)


def correct_per_image(predictions_path: str) -> List[int]:
    """0/1 per image of a classifier's ``tools/test.py --out`` predictions: whether
    its top-1 label is the ground truth, in the test set's order."""
    import pickle
    with open(predictions_path, 'rb') as f:
        samples = pickle.load(f)
    return [int(int(s['pred_label'][0]) == int(s['gt_label'][0])) for s in samples]


def slug(name: str) -> str:
    """A run's name as a directory name: ``'KD: AVER'`` -> ``'kd_aver'``."""
    return re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')


def _moved_checkout(recorded: Optional[str], config: Optional[str]) -> bool:
    """Whether a recorded config path is ``config`` (relative to the project root) in
    another checkout: an absolute path ending with it (runs recorded before configs
    were recorded relative to the root)."""
    return (isinstance(recorded, str) and isinstance(config, str) and osp.isabs(recorded)
            and not osp.isabs(config) and recorded.endswith(osp.sep + config))


def check_settings(work_dir: str, settings: dict) -> None:
    """Record the settings of the run in ``work_dir/experiment.json``, or check that a
    run already there has the same ones, so a finished result or a checkpoint is
    never reused for other settings.

    Raises:
        ExperimentFailed: ``work_dir`` holds a run of other settings.
    """
    path = osp.join(work_dir, 'experiment.json')
    if osp.isfile(path):
        with open(path) as f:
            recorded = json.load(f)
        if _moved_checkout(recorded.get('config'), settings.get('config')):
            recorded['config'] = settings['config']  # its contents are in config_digest
        if recorded != settings:
            changed = sorted(k for k in settings if recorded.get(k) != settings[k])
            raise ExperimentFailed(
                f'{work_dir} holds a run of other settings (changed: {", ".join(changed)}); '
                'redo it with --force, or give another work root', path)
        return
    os.makedirs(work_dir, exist_ok=True)
    atomic_write(json.dumps(settings, indent=2).encode(), path)


def config_digest(config: str) -> str:
    """A digest of ``config`` as MMEngine reads it (its ``_base_`` files merged in) and
    of the model configs it names by path (a distiller's student and teachers), so
    that editing any of them changes the run's settings."""
    from mmengine.config import Config
    digest = hashlib.sha1()
    cfg = Config.fromfile(config).to_dict()
    digest.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for path in sorted(_config_paths(cfg)):
        digest.update(json.dumps(Config.fromfile(path).to_dict(), sort_keys=True,
                                 default=str).encode())
    return digest.hexdigest()[:16]


def _config_paths(node) -> set:
    """The existing ``.py`` files named by string values anywhere in ``node``."""
    if isinstance(node, dict):
        return set().union(*(_config_paths(v) for v in node.values()))
    if isinstance(node, (list, tuple)):
        return set().union(*(_config_paths(v) for v in node))
    return {node} if isinstance(node, str) and node.endswith('.py') and osp.isfile(node) else set()


def data_fingerprints(options: List[str]) -> Dict[str, dict]:
    """The generator settings (``meta.json``) of each generated data root the ``k=v``
    options name: a regenerated dataset of other settings changes the run's settings."""
    found = {}
    for option in options:
        key, _, value = option.partition('=')
        meta = osp.join(value, 'meta.json')
        if key.endswith('data_root') and osp.isfile(meta) and value not in found:
            with open(meta) as f:
                found[value] = json.load(f)
    return found


def is_finished(work_dir: str, result_name: str = 'result.json') -> bool:
    """Whether :func:`train_and_test` has a cached result in ``work_dir``."""
    return osp.isfile(osp.join(work_dir, result_name))


def train_and_test(config: str, work_dir: str, metric_key: str, metric_scale: float,
                   root: str, options: List[str] = (), export_to: Optional[str] = None,
                   validate: bool = True, result_name: str = 'result.json', force: bool = False,
                   echo: Optional[Callable[[str], None]] = None,
                   env: Optional[Dict[str, str]] = None, per_image: bool = False) -> dict:
    """Train ``config`` in ``work_dir``, export it to ``export_to`` if given (teachers),
    and evaluate its last checkpoint; cached in ``work_dir/result_name``. The run's
    settings (config, options, validation) are recorded beside it: a work directory of
    other settings is refused rather than resumed or reused.

    Args:
        options: ``k=v`` cfg-options given to both tools.
        metric_key / metric_scale: the metric in tools/test.py's output and the factor
            to percent.
        root: the project root (the tools' working directory).
        validate: validate during training as the config says (``False``:
            ``tools/train.py --no-validate``; the score is tools/test.py's either way).
        per_image: also keep which test images the model classified correctly
            (classification: from ``tools/test.py --out``).

    Returns:
        ``dict(score, score_batch_stats, train_seconds, s_per_iter, peak_mib, cached)``
        and with ``per_image`` ``correct`` (0/1 per test image, in the test set's
        order). ``score_batch_stats`` is the score with the model's BatchNorm layers
        normalising by batch statistics instead of their running ones
        (``tools/test.py --bn-batch-stats``; None without BN); ``peak_mib`` is the
        training process's peak RSS, or the GPU peak MMEngine logged on CUDA.

    Raises:
        ExperimentFailed: a tool failed (nothing is cached), or ``work_dir`` holds a
            run of other settings.
    """
    result_path = osp.join(work_dir, result_name)
    if force and osp.isdir(work_dir):  # start afresh, not from its checkpoints
        shutil.rmtree(work_dir)
    # The config relative to the root: a run stays valid in a moved or second checkout
    # (its contents are in config_digest).
    recorded_config = osp.relpath(osp.abspath(config), osp.abspath(root))
    if recorded_config.startswith(os.pardir):
        recorded_config = osp.abspath(config)
    check_settings(work_dir, dict(config=recorded_config, options=list(options),
                                  validate=validate, config_digest=config_digest(config),
                                  data=data_fingerprints(options)))
    if is_finished(work_dir, result_name):
        with open(result_path) as f:
            return dict(json.load(f), cached=True)
    py = sys.executable
    cfg_options = ['--cfg-options', *options] if options else []
    start = time.time()
    rss_mib = run_logged([py, 'tools/train.py', config, '--work-dir', work_dir, '--resume',
                          *([] if validate else ['--no-validate']), *cfg_options],
                         osp.join(work_dir, 'train.out'), root, echo, env)
    train_seconds = time.time() - start
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    if export_to:
        run_logged([py, 'tools/export_student.py', checkpoint, export_to],
                   osp.join(work_dir, 'export.out'), root, None, env)
    metrics_path = osp.join(work_dir, 'test_metrics.json')
    predictions = osp.join(work_dir, 'test_predictions.pkl')
    run_logged([py, 'tools/test.py', config, checkpoint, '--work-dir', work_dir,
                '--metrics-json', metrics_path, '--bn-batch-stats',
                *(['--out', predictions] if per_image else []), *cfg_options],
               osp.join(work_dir, 'test.out'), root, None, env)
    with open(metrics_path) as f:
        metrics = json.load(f)
    if metric_key not in metrics:
        raise ExperimentFailed(f'tools/test.py reported {sorted(metrics)}, not {metric_key!r}',
                               osp.join(work_dir, 'test.out'))
    figures = training_log_figures(work_dir)
    batch_stats = metrics.get(f'{BATCH_STATS_PREFIX}{metric_key}')
    result = dict(score=metrics[metric_key] * metric_scale,
                  score_batch_stats=None if batch_stats is None else batch_stats * metric_scale,
                  train_seconds=train_seconds, s_per_iter=figures['s_per_iter'],
                  peak_mib=figures['gpu_peak_mib'] or rss_mib)
    if per_image:
        result['correct'] = correct_per_image(predictions)
    atomic_write(json.dumps(result, indent=2).encode(), result_path)
    return dict(result, cached=False)
