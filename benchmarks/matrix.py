"""The benchmark matrix: tasks x {teachers, student alone, best single teacher,
every weighting method} x seeds, each run trained with ``tools/train.py`` and
evaluated with ``tools/test.py``, summarised over seeds with paired differences and
their intervals (:mod:`benchmarks.paired`).

Teachers are trained once per task (seed 0) and exported; the best of them (by its
metric) is the teacher of the plain single-teacher KD row. Every run is cached in
its work directory, so a re-run skips what finished and continues what was stopped.
"""
import copy
import csv
import os
import os.path as osp
import queue
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from benchmarks import experiments, paired
from benchmarks.experiments import slug
from benchmarks.methods import VARIANT_TABLE, VARIANTS, Variant, method_hook
from benchmarks.tasks import Pool, Task

#: Rows of each task's table after the teachers, in order.
STUDENT_ALONE = 'student alone'
SINGLE_TEACHER = 'single teacher'


class Preset(NamedTuple):
    tasks: Sequence[str]
    seeds: int
    quick: bool     # the tasks' quick schedules instead of their configs' own
    validate: bool  # validate during training (the table's metric is tools/test.py's)
    cpu_jobs: int = 1  # runs at a time without a GPU (each on an equal share of the cores)


PRESETS = {
    # About 27 minutes on 2 free CPU cores (43 min of user CPU time): the classification
    # slice, 3 seeds, 5-epoch students, two runs at a time on one core each, evaluated
    # once by tools/test.py.
    'quick': Preset(('classification', ), 3, True, False, cpu_jobs=2),
    # The configs' own schedules and validation on every task, 3 seeds: a GPU's work.
    'full': Preset(('classification', 'detection', 'segmentation'), 3, False, True),
}


def default_jobs(cpu_jobs: int) -> int:
    """Runs at a time when ``--jobs`` is not given: one on CUDA (``--jobs J`` spreads
    runs over J GPUs), ``cpu_jobs`` (at most one per core) without a GPU."""
    import torch
    return 1 if torch.cuda.is_available() else max(1, min(cpu_jobs, os.cpu_count() or 1))


class Experiment(NamedTuple):
    task: str
    row: str           # the table row, e.g. 'KD: AVER'
    role: str          # 'teacher', 'student', 'single' or 'distilled'
    config: str
    seed: int
    work_dir: str
    options: Dict[str, object]  # cfg-options
    export_to: Optional[str] = None  # teachers: the exported checkpoint
    method: Optional[str] = None
    validate: bool = True


class Outcome(NamedTuple):
    experiment: Experiment
    result: Optional[dict]  # experiments.train_and_test's, None if it failed
    error: Optional[str] = None


def option_strings(options: Dict[str, object]) -> List[str]:
    """``k=v`` command-line cfg-options.

    Raises:
        ValueError: a value that MMEngine's ``DictAction`` would not read back as
            given (a string with spaces, commas or quotes, e.g. a path; a dict).
    """
    strings = []
    for key, value in options.items():
        if isinstance(value, dict) or (isinstance(value, str) and any(
                c in value for c in ' ,\'"')):
            raise ValueError(f'cfg-option {key}={value!r} cannot pass through the command '
                             'line (spaces, commas or quotes in a path?): use a path without '
                             'them, or set it in the config')
        strings.append(f'{key}={value}')
    return strings


class Settings(NamedTuple):
    """What every run of a task shares."""
    work_root: str
    data_root: str
    quick: bool
    extra_options: Dict[str, object] = {}  # the user's cfg-options, applied last
    validate: bool = True


def _base_options(task: Task, settings: Settings, role: str, seed: int) -> dict:
    options = dict(task.data_options(settings.data_root))
    if settings.quick:
        options.update(task.quick_schedule['teacher' if role == 'teacher' else 'student'])
    options['randomness.seed'] = seed
    options.update(settings.extra_options)
    return options


def plan_teachers(name: str, task: Task, settings: Settings) -> List[Experiment]:
    """The task's teachers, trained with seed 0 and exported to ``<task>/teachers``."""
    return [_teacher_experiment(name, task, settings, run) for run in task.teachers]


def _teacher_experiment(name: str, task: Task, settings: Settings, run) -> Experiment:
    task_root = osp.join(settings.work_root, name)
    return Experiment(name, run.name, 'teacher', run.config, 0,
                      osp.join(task_root, 'teachers', slug(run.name)),
                      _base_options(task, settings, 'teacher', 0),
                      export_to=osp.join(task_root, 'teachers', run.export_as),
                      validate=settings.validate)


def plan_pool_teachers(pools: Sequence[Pool], tasks: Dict[str, Task],
                       settings: Dict[str, Settings]) -> List[Experiment]:
    """The teachers that ``pools`` add, each trained as its own task trains its
    teachers (seed 0, that task's data and schedule, exported to
    ``<teacher task>/teachers``, where that task's own benchmark finds the same run);
    once each. ``settings`` holds every teacher task's."""
    planned = {}
    for pool in pools:
        exp = _teacher_experiment(pool.teacher_task, tasks[pool.teacher_task],
                                  settings[pool.teacher_task], pool.teacher)
        planned.setdefault(exp.work_dir, exp)
    return list(planned.values())


def pool_teacher_file(pool: Pool, work_root: str) -> str:
    """Where :func:`plan_pool_teachers` exports the pool's added teacher."""
    return osp.join(work_root, pool.teacher_task, 'teachers', pool.teacher.export_as)


def write_derived_config(path: str, comment: str, base: str, overrides: str) -> str:
    """Write a config file at ``path``: ``# comment``, ``_base_ = [base]`` (absolute)
    and the ``overrides`` lines."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f'# {comment}\n_base_ = [{osp.abspath(base)!r}]\n{overrides}\n')
    return path


def write_single_teacher_config(aver_config: str, teacher_index: int, path: str) -> str:
    """A config distilling from one of ``aver_config``'s teachers only (plain KD: the
    uniform weighting of one teacher is 1)."""
    from mmengine.config import Config
    teacher = Config.fromfile(aver_config).model.teachers[teacher_index].to_dict()
    return write_derived_config(
        path, f'Plain KD from one teacher: {osp.basename(aver_config)} with its teacher '
        f'{teacher["name"]!r} only.', aver_config, f'model = dict(teachers=[{teacher!r}])')


def write_variant_config(variant: Variant, method_config: str, path: str) -> str:
    """A config of ``variant``: the method's config with the variant's options merged
    into the method's hook."""
    from mmengine.config import Config
    hooks = copy.deepcopy(Config.fromfile(method_config).get('custom_hooks', []))
    method_hook(hooks, variant.method).update(variant.hook_options)
    return write_derived_config(
        path, f'{variant.name}: {osp.relpath(method_config)} with '
        f'{variant.hook_options!r} in its hook.', method_config, f'custom_hooks = {hooks!r}')


def plan_students(name: str, task: Task, settings: Settings, seeds: Sequence[int],
                  methods: Sequence[str], best_teacher: Optional[int]) -> List[Experiment]:
    """The student alone, plain KD from teacher ``best_teacher`` (an index into the
    task's teachers; None leaves the row out), each method, each variant
    (:data:`~benchmarks.methods.VARIANTS`) and each of the task's pools
    (:class:`~benchmarks.tasks.Pool`, their added teachers from
    :func:`plan_pool_teachers`) among ``methods``, for every seed."""
    task_root = osp.join(settings.work_root, name)
    teacher_files = task.teacher_files(osp.join(task_root, 'teachers'))
    rows = [(STUDENT_ALONE, 'student', task.student_config, None)]
    if best_teacher is not None:
        teacher = task.teachers[best_teacher]
        config = write_single_teacher_config(
            task.distill_config('aver'), best_teacher,
            osp.join(task_root, 'configs', f'kd_single_{slug(teacher.name)}.py'))
        rows.append((f'{SINGLE_TEACHER} ({teacher.name})', 'single', config, None))
    rows += [(run.name, 'distilled', run.config, run.method) for run in task.runs
             if run.method in methods]
    for variant in VARIANT_TABLE:
        if variant.key in methods:
            config = write_variant_config(
                variant, task.distill_config(variant.method),
                osp.join(task_root, 'configs', f'kd_{variant.key}.py'))
            rows.append((f'KD: {variant.name}', 'distilled', config, variant.key))
    pools = [pool for pool in task.pools if pool.key in methods]
    rows += [(f'KD: {pool.name}', 'distilled', pool.config, pool.key) for pool in pools]
    planned = []
    for seed in seeds:
        for row, role, config, method in rows:
            options = _base_options(task, settings, role, seed)
            pool = task.pool(method)
            if role == 'single':
                options.update(task.checkpoint_options([teacher_files[best_teacher]]))
            elif pool is not None:  # the task's teachers, then the added one
                options.update(task.checkpoint_options(
                    teacher_files + [pool_teacher_file(pool, settings.work_root)]))
            elif role == 'distilled':
                options.update(task.checkpoint_options(teacher_files))
            planned.append(Experiment(name, row, role, config, seed,
                                      osp.join(task_root, f'seed{seed}', slug(row)), options,
                                      method=method, validate=settings.validate))
    return planned


def teacher_diagnostics(name: str, task: Task, settings: Settings, root: str,
                        force: bool = False) -> Optional[str]:
    """Run ``tools/analysis/teacher_diagnostics.py`` on the task's trained teachers
    (its AVER config with their exported checkpoints, on the task's data) into
    ``<task>/teacher_diagnostics``; returns its markdown, or None when it failed
    (the error is printed). A finished report is reused unless ``force``."""
    task_root = osp.join(settings.work_root, name)
    out_dir = osp.join(task_root, 'teacher_diagnostics')
    report = osp.join(out_dir, 'teacher_diagnostics.md')
    if force or not osp.isfile(report):
        os.makedirs(out_dir, exist_ok=True)
        options = {**task.data_options(settings.data_root),
                   **task.checkpoint_options(task.teacher_files(osp.join(task_root, 'teachers'))),
                   **settings.extra_options}
        print(f'[benchmark] {name}: teacher diagnostics ({out_dir})', flush=True)
        try:
            experiments.run_logged(
                [sys.executable, 'tools/analysis/teacher_diagnostics.py',
                 osp.abspath(task.distill_config('aver')), '--out-dir', osp.abspath(out_dir),
                 '--cfg-options', *option_strings(options)],
                osp.join(out_dir, 'diagnostics.out'), root)
        except experiments.ExperimentFailed as error:
            print(f'[benchmark] {name}: teacher diagnostics FAILED: {error}', flush=True)
            return None
    with open(report) as f:
        return f.read()


class Progress:
    """Prints each finished run with the count and an ETA from this session's runs."""

    def __init__(self, total: int, jobs: int, label: str,
                 print_fn: Callable[[str], None] = print):
        self.total, self.jobs, self.label, self.print = total, jobs, label, print_fn
        self.done, self.seconds = 0, []
        self.started = time.time()
        self.lock = threading.Lock()

    def finished(self, outcome: Outcome, seconds: float, metric_name: str) -> None:
        with self.lock:
            self.done += 1
            exp, result = outcome.experiment, outcome.result
            if result is None:
                what = f'FAILED: {outcome.error}'
            else:
                cached = result.get('cached')
                if not cached:
                    self.seconds.append(seconds)
                what = (f'{metric_name} {result["score"]:.2f}'
                        + (' (done before)' if cached else f' ({seconds:.0f} s)'))
            left = self.total - self.done
            eta = ''
            if left and self.seconds:
                eta = f'; ETA {_duration(statistics.fmean(self.seconds) * left / self.jobs)}'
            self.print(f'[benchmark] {self.label} {self.done}/{self.total} done: {exp.task} | '
                       f'{exp.row} | seed {exp.seed}: {what}{eta}')


def _duration(seconds: float) -> str:
    return f'{seconds:.0f} s' if seconds < 90 else f'{seconds / 60:.0f} min'


def _job_environments(jobs: int) -> 'queue.Queue[dict]':
    """One environment per concurrent job: its own GPU (of those visible), or without
    GPUs an equal share of the CPU threads."""
    import torch
    slots = queue.Queue()
    gpus = torch.cuda.device_count()
    if 0 < gpus < jobs:
        raise ValueError(f'--jobs {jobs} needs {jobs} GPUs; {gpus} are visible.')
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    devices = visible.split(',') if visible else [str(i) for i in range(gpus)]
    for slot in range(jobs):
        env = dict(os.environ)
        if gpus and jobs > 1:
            env['CUDA_VISIBLE_DEVICES'] = devices[slot]
        elif jobs > 1:
            threads = str(max(1, (os.cpu_count() or 1) // jobs))
            env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        slots.put(env)
    return slots


def map_in_job_slots(function: Callable[[object, dict], object], items: Sequence,
                     jobs: int) -> list:
    """``[function(item, env) for item in items]``, ``jobs`` at a time, each call with
    the environment of a free job slot (:func:`_job_environments`); results in the
    order of ``items``."""
    slots = _job_environments(jobs)

    def one(item):
        env = slots.get()
        try:
            return function(item, env)
        finally:
            slots.put(env)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, items))


def run_experiments(planned: Sequence[Experiment], tasks: Dict[str, Task], root: str,
                    jobs: int, label: str, force: bool = False,
                    verbose: bool = False) -> List[Outcome]:
    """Run ``planned`` (``jobs`` at a time); a failed run is reported and the others go
    on. Outcomes come back in the order planned."""
    progress = Progress(len(planned), jobs, label)

    def execute(exp: Experiment, env: dict) -> Outcome:
        task = tasks[exp.task]
        label = f'{exp.task} | {exp.row} | seed {exp.seed}'
        if force or not experiments.is_finished(exp.work_dir):
            print(f'[benchmark] {label}: training ({exp.work_dir})', flush=True)
        start = time.time()
        try:
            result = experiments.train_and_test(
                exp.config, exp.work_dir, task.metric_key, task.metric_scale, root,
                option_strings(exp.options), export_to=exp.export_to,
                validate=exp.validate, force=force,
                echo=experiments.progress_echo(f'    [{label}] ') if verbose else None,
                env=env, per_image=task.per_image and exp.role != 'teacher')
            outcome = Outcome(exp, result)
        except experiments.ExperimentFailed as error:
            outcome = Outcome(exp, None, str(error))
        except Exception as error:  # any other failure of one run must not stop the rest
            outcome = Outcome(exp, None, f'{type(error).__name__}: {error}')
        progress.finished(outcome, time.time() - start, task.metric_name)
        return outcome

    return map_in_job_slots(execute, planned, jobs)


def best_teacher_index(outcomes: Sequence[Outcome]) -> Optional[int]:
    """Index of the best-scoring teacher among a task's teacher outcomes (all must have
    finished), or None."""
    if not outcomes or any(o.result is None for o in outcomes):
        return None
    scores = [o.result['score'] for o in outcomes]
    return scores.index(max(scores))


#: A run is flagged when its score with BatchNorm on batch statistics beats its
#: score with the running statistics by more than this (points of the metric).
BN_GAP_POINTS = 5.0
#: The reference rows of the paired comparisons.
AVER = 'KD: AVER'


def summarise(outcomes: Sequence[Outcome], tasks: Dict[str, Task]) -> List[dict]:
    """One row per task and table row: the metric's mean, sample std and 95%
    t-interval over seeds; for the distilled and single-teacher rows the paired
    difference (same seeds) to the student alone and to AVER, each with its
    t-interval over seeds (``vs_alone``, ``vs_aver``: :class:`~benchmarks.paired.Interval`)
    and, where runs kept per-image correctness, a paired bootstrap over the
    validation images (``vs_aver_bootstrap``); for a variant
    (:data:`~benchmarks.methods.VARIANTS`) or a pool (:class:`~benchmarks.tasks.Pool`)
    the paired difference to its method's row (``vs_method``); the largest gap between the scores
    with batch and with running BN statistics (``bn_gap``) and the runs over
    :data:`BN_GAP_POINTS` (``bn_flags``); median s/iter and peak memory."""
    grouped: Dict[tuple, List[Outcome]] = {}
    for outcome in outcomes:
        grouped.setdefault((outcome.experiment.task, outcome.experiment.row), []).append(outcome)
    rows = []
    for (task, row), group in grouped.items():
        finished = [dict(o.result, seed=o.experiment.seed) for o in group
                    if o.result is not None]
        scores = paired.seed_scores(finished)
        interval = paired.t_interval(list(scores.values())) if scores else None
        gaps = {r['seed']: r['score_batch_stats'] - r['score'] for r in finished
                if r.get('score_batch_stats') is not None}
        rows.append(dict(
            task=task, row=row, role=group[0].experiment.role, metric=tasks[task].metric_name,
            method=group[0].experiment.method,
            mean=interval.mean if interval else None,
            std=statistics.stdev(scores.values()) if len(scores) > 1 else None,
            interval=interval, scores=scores, correct=paired.seed_correct(finished),
            bn_gap=max(gaps.values()) if gaps else None,
            bn_flags=[(seed, gap) for seed, gap in sorted(gaps.items()) if gap > BN_GAP_POINTS],
            runs=len(finished), failed=len(group) - len(finished),
            s_per_iter=_mean_of(r.get('s_per_iter') for r in finished),
            peak_mib=_mean_of(r.get('peak_mib') for r in finished),
            errors=[o.error for o in group if o.error]))
    for row in rows:
        alone = _find(rows, row['task'], role='student')
        aver = _find(rows, row['task'], row=AVER)
        compared = row['role'] in ('single', 'distilled')
        row['vs_alone'] = (paired.paired_difference(row['scores'], alone['scores'])
                           if compared and alone else None)
        row['vs_aver'] = (paired.paired_difference(row['scores'], aver['scores'])
                          if compared and aver and aver is not row else None)
        row['vs_aver_bootstrap'] = (
            paired.bootstrap_difference(row['correct'], aver['correct'])
            if row['vs_aver'] is not None and row['correct'] and aver['correct'] else None)
        row['gain'] = row['vs_alone'].mean if row['vs_alone'] else None
        variant = VARIANTS.get(row['method']) or tasks[row['task']].pool(row['method'])
        base = variant and next((r for r in rows if r['task'] == row['task'] and r['scores']
                                 and r['method'] == variant.method), None)
        row['vs_method'] = (paired.paired_difference(row['scores'], base['scores'])
                            if base else None)
    return rows


def _find(rows: Sequence[dict], task: str, role: Optional[str] = None,
          row: Optional[str] = None) -> Optional[dict]:
    """The task's row of that role or name (with scores), or None."""
    return next((r for r in rows if r['task'] == task and r['scores']
                 and (role is None or r['role'] == role) and (row is None or r['row'] == row)),
                None)


def _mean_of(values) -> Optional[float]:
    values = [v for v in values if v is not None and v == v]
    return statistics.fmean(values) if values else None


def _fmt(value: Optional[float], spec: str, sign: bool = False) -> str:
    if value is None:
        return ''
    return format(value, ('+' if sign else '') + spec)


def _fmt_interval(interval: Optional['paired.Interval'], spec: str = '+.2f',
                  mark: str = ' *') -> str:
    return '' if interval is None else interval.format(spec, mark)


def verdicts(rows: Sequence[dict], key: str = 'vs_aver') -> Dict[str, List[str]]:
    """The rows whose paired difference ``key`` is ``'better'``, ``'worse'`` or
    ``'no difference'`` (the interval holds 0); a row of one seed has none."""
    found = {'better': [], 'worse': [], 'no difference': []}
    for r in rows:
        if r.get(key) is not None and r[key].low is not None:  # one seed: no verdict
            found[r[key].verdict].append(r['row'])
    return found


def seed_spread(task_rows: Sequence[dict]) -> Dict[str, Optional['paired.Spread']]:
    """A task's seed-to-seed spread, pooled where rows share it
    (:func:`~benchmarks.paired.pooled_std`): ``'distilled'`` over the single-teacher
    and distilled rows, ``'alone'`` the student alone, ``'vs_aver'`` over the paired
    differences to AVER (what decides the width of the paired intervals)."""
    compared = [r for r in task_rows if r['role'] in ('single', 'distilled')]
    aver = _find(task_rows, task_rows[0]['task'], row=AVER) if task_rows else None
    differences = [[r['scores'][s] - aver['scores'][s] for s in sorted(r['scores'])
                    if s in aver['scores']] for r in compared if aver and r is not aver]
    return dict(distilled=paired.pooled_std([r['scores'].values() for r in compared]),
                alone=paired.pooled_std([r['scores'].values() for r in task_rows
                                         if r['role'] == 'student']),
                vs_aver=paired.pooled_std(differences))


def format_spread(task_rows: Sequence[dict]) -> str:
    """The line under a task's table stating :func:`seed_spread`."""
    spread = seed_spread(task_rows)
    parts = [f'{label} {spread[key].format()}' for key, label in (
        ('distilled', 'distilled and single-teacher rows'), ('alone', 'student alone'),
        ('vs_aver', 'paired differences to AVER')) if spread[key] is not None]
    return ('Seed-to-seed standard deviation, pooled over rows (95% chi-square '
            f'interval): {"; ".join(parts) or "fewer than two seeds"}.')


def format_markdown(rows: Sequence[dict],
                    diagnostics: Optional[Dict[str, Optional[str]]] = None) -> str:
    """A markdown table per task with its paired comparisons, what beats AVER and
    the runs flagged for a BN train/eval gap; failed runs are listed under it, and
    the task's teacher diagnostics (markdown, ``{task: text}``) follow it."""
    parts = []
    diagnostics = diagnostics or {}
    for task in dict.fromkeys(r['task'] for r in rows):
        task_rows = [r for r in rows if r['task'] == task]
        metric = task_rows[0]['metric']
        bootstrap = any(r['vs_aver_bootstrap'] for r in task_rows)
        variants = any(r.get('vs_method') for r in task_rows)
        seeds = max((r['runs'] for r in task_rows), default=0)
        lines = [f'### {task}', '',
                 f'| model | {metric} mean | std | 95% CI | seeds | vs student alone, '
                 'paired (95% CI) | vs AVER, paired (95% CI) |'
                 + (' vs AVER, bootstrap over images |' if bootstrap else '')
                 + (' vs its method, paired (95% CI) |' if variants else '')
                 + ' BN gap | s/iter | peak memory (MiB) |',
                 '|---|---|---|---|---|---|---|' + ('---|' if bootstrap else '')
                 + ('---|' if variants else '') + '---|---|---|']
        notes = []
        for r in task_rows:
            mean = _fmt(r['mean'], '.2f') if r['mean'] is not None else 'failed'
            ci = ('' if r['interval'] is None or r['interval'].low is None else
                  f'[{r["interval"].low:.2f}, {r["interval"].high:.2f}]')
            runs = f'{r["runs"]}' + (f' ({r["failed"]} failed)' if r['failed'] else '')
            lines.append(
                f'| {r["row"]} | {mean} | {_fmt(r["std"], ".2f")} | {ci} | {runs} | '
                f'{_fmt_interval(r["vs_alone"])} | {_fmt_interval(r["vs_aver"])} |'
                + (f' {_fmt_interval(r["vs_aver_bootstrap"], mark="")} |' if bootstrap else '')
                + (f' {_fmt_interval(r.get("vs_method"))} |' if variants else '')
                + f' {_fmt(r["bn_gap"], ".1f", sign=True)} | {_fmt(r["s_per_iter"], ".3f")} '
                f'| {_fmt(r["peak_mib"], ".0f")} |')
            notes += [f'- {r["row"]}: {error}' for error in r['errors']]
        found = verdicts(task_rows)
        lines += ['', f'Paired over {seeds} seeds (same initialisation, data order and '
                  'augmentation per seed); `*`: the 95% t-interval excludes 0 (the '
                  'verdicts below are the t-intervals\'; the bootstrap is unmarked).',
                  f'Better than AVER: {", ".join(found["better"]) or "none"}. '
                  f'Worse than AVER: {", ".join(found["worse"]) or "none"}. '
                  f'No difference from AVER: {", ".join(found["no difference"]) or "none"}.']
        flagged = [f'{r["row"]} seed {seed} ({gap:+.1f})' for r in task_rows
                   for seed, gap in r['bn_flags']]
        lines.append(format_spread(task_rows))
        lines.append(f'BN gap (batch minus running statistics) over {BN_GAP_POINTS:.0f} '
                     f'points: {", ".join(flagged) if flagged else "no run"}.')
        if notes:
            lines += ['', 'Failed runs:', *notes]
        if diagnostics.get(task):
            lines += ['', diagnostics[task].strip()]
        parts.append('\n'.join(lines))
    return '\n\n'.join(parts) + '\n'


CSV_FIELDS = ('task', 'row', 'role', 'metric', 'mean', 'std', 'ci_low', 'ci_high', 'runs',
              'failed', 'gain', 'vs_alone_low', 'vs_alone_high', 'vs_aver', 'vs_aver_low',
              'vs_aver_high', 'vs_aver_bootstrap_low', 'vs_aver_bootstrap_high', 'vs_method',
              'vs_method_low', 'vs_method_high', 'bn_gap',
              's_per_iter', 'peak_mib', 'scores')


def csv_record(row: dict) -> dict:
    """``row`` of :func:`summarise` flattened for :data:`CSV_FIELDS`."""
    record = dict(row, scores=' '.join(f'{seed}:{score:.2f}'
                                       for seed, score in sorted(row['scores'].items())))
    for key, interval in (('ci', row['interval']), ('vs_alone', row['vs_alone']),
                          ('vs_aver', row['vs_aver']),
                          ('vs_aver_bootstrap', row['vs_aver_bootstrap']),
                          ('vs_method', row.get('vs_method'))):
        if key != 'ci':
            record[key] = None if interval is None else interval.mean
        record[f'{key}_low'] = None if interval is None else interval.low
        record[f'{key}_high'] = None if interval is None else interval.high
    record['gain'] = row['gain']
    return record


def write_csv(rows: Sequence[dict], path: str) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, CSV_FIELDS, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(csv_record(row) for row in rows)


def plot_task_bars(rows: Sequence[dict], task: Task, path: str) -> str:
    """Bar chart of one task's rows: the mean over seeds with its 95% t-interval as
    the error bar, coloured by role."""
    from benchmarks.plotting import plot_score_bars
    shown = [r for r in rows if r['mean'] is not None]
    return plot_score_bars([r['row'] for r in shown], [r['mean'] for r in shown],
                           [r['role'] for r in shown], path,
                           f'{task.metric_name}, mean over seeds',
                           f'{task.title} (error bars: 95% t-interval over seeds)',
                           spreads=[r['interval'].half_width for r in shown])


def plot_task_differences(rows: Sequence[dict], task: Task, path: str) -> str:
    """The paired differences of one task's rows to the student alone and to AVER,
    with their 95% intervals (:func:`benchmarks.plotting.plot_paired_differences`)."""
    from benchmarks.plotting import plot_paired_differences
    panels = {f'vs {name}': {r['row']: r[key] for r in rows if r.get(key) is not None}
              for name, key in (('student alone', 'vs_alone'), ('AVER', 'vs_aver'))}
    return plot_paired_differences(panels, path, f'{task.metric_name} difference, paired '
                                   'over seeds', f'{task.title}: paired differences '
                                   '(95% t-interval over seeds)')
