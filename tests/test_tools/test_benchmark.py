"""The benchmark's method matrix: plans, the single-teacher row, caching, failures,
tables and plots."""
import csv
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import ROOT, kd_overrides, make_batch, run_tool
from benchmarks import matrix
from benchmarks.tasks import make_tasks

TASKS = make_tasks(ROOT)


def test_single_teacher_config_distils_from_that_teacher_alone(tmp_path, shapes_root,
                                                               teacher_dir):
    from mmkd_ext.registry import MODELS
    path = matrix.write_single_teacher_config(TASKS['classification'].distill_config('aver'), 2,
                                              str(tmp_path / 'single.py'))
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(kd_overrides(shapes_root, teacher_dir, teachers=['resnet50_w8.pth']))
    assert [t.name for t in cfg.model.teachers] == ['r50w8']
    distiller = MODELS.build(cfg.model)
    inputs, samples = make_batch(distiller)
    losses = distiller(inputs, samples, mode='loss')
    assert losses['r50w8.w_logit'].item() == pytest.approx(1.0)  # plain KD
    assert not any(key.startswith(('r18w24.', 'r18w16.')) for key in losses)
    with torch.no_grad():
        expected = distiller.logit_kd_loss(distiller.student(inputs, mode='tensor'),
                                        distiller.teachers[0](inputs, mode='tensor'))
    assert losses['loss_kd'].item() == pytest.approx(expected.mean().item(), rel=1e-4)


def test_plans_cover_every_row_and_seed_with_the_quick_schedule(tmp_path):
    task = TASKS['classification']
    settings = matrix.Settings(str(tmp_path), 'data/x', True, {'train_dataloader.batch_size': 8},
                               validate=False)
    teachers = matrix.plan_teachers('classification', task, settings)
    assert [t.options['train_cfg.max_epochs'] for t in teachers] == [10, 10, 10]
    students = matrix.plan_students('classification', task, settings, [0, 1],
                                    ['aver', 'mmkd'], best_teacher=0)
    assert [(e.row, e.seed) for e in students] == [
        (row, seed) for seed in (0, 1) for row in
        ('student alone', 'single teacher (ResNet18-w24)', 'KD: AVER', 'KD: MMKD (meta-learned)')]
    for e in students:
        assert e.options['train_cfg.max_epochs'] == 5 and e.options['randomness.seed'] == e.seed
        assert e.options['train_dataloader.batch_size'] == 8  # the user's, applied last
        assert e.options['train_dataloader.dataset.data_root'] == 'data/x/'
    single = students[1]
    assert single.options['model.teachers.0.checkpoint'] == teachers[0].export_to
    assert 'model.teachers.0.checkpoint' not in students[0].options
    assert students[2].options['model.teachers.2.checkpoint'] == teachers[2].export_to
    assert len({e.work_dir for e in students}) == len(students)
    assert not any(e.validate for e in teachers + students)  # tools/test.py scores them


def test_a_variant_is_its_methods_config_with_the_hook_options_and_paired_with_it(tmp_path):
    from benchmarks.methods import method_hook
    task = TASKS['classification']
    settings = matrix.Settings(str(tmp_path), 'data/x', True, {}, validate=False)
    students = matrix.plan_students('classification', task, settings, [0, 1],
                                    ['mmkd', 'mmkd_fd_one_step'], best_teacher=None)
    assert [e.row for e in students[:3]] == [
        'student alone', 'KD: MMKD (meta-learned)', 'KD: MMKD, finite-difference one-step']
    variant = students[2]
    assert variant.method == 'mmkd_fd_one_step' and variant.role == 'distilled'
    cfg, base = Config.fromfile(variant.config), Config.fromfile(task.distill_config('mmkd'))
    hook = method_hook(cfg.custom_hooks, 'mmkd')
    assert (hook.hypergradient, hook.inner_kd_steps, hook.inner_ce_steps) == (
        'finite_difference', 1, 0)
    assert hook.interval == method_hook(base.custom_hooks, 'mmkd').interval
    assert cfg.model == base.model and cfg.train_dataloader == base.train_dataloader

    def outcome(experiment, score):
        return matrix.Outcome(experiment, dict(score=score), None)
    scores = {'student alone': (40.0, 41.0), 'KD: MMKD (meta-learned)': (50.0, 52.0),
              'KD: MMKD, finite-difference one-step': (51.0, 54.0)}
    rows = {r['row']: r for r in matrix.summarise(
        [outcome(e, scores[e.row][e.seed]) for e in students], TASKS)}
    assert rows['KD: MMKD, finite-difference one-step']['vs_method'].mean == pytest.approx(1.5)
    assert rows['KD: MMKD (meta-learned)']['vs_method'] is None
    assert '| vs its method, paired (95% CI) |' in matrix.format_markdown(list(rows.values()))


def test_a_work_dir_of_other_settings_is_refused_not_reused(tmp_path):
    from benchmarks import experiments
    settings = dict(config='/c/kd_aver.py', options=['randomness.seed=0'], validate=False)
    experiments.check_settings(str(tmp_path), settings)
    experiments.check_settings(str(tmp_path), dict(settings))  # the same run: fine
    with pytest.raises(experiments.ExperimentFailed, match=r'changed: options\); redo it '
                       'with --force'):
        experiments.check_settings(str(tmp_path), dict(settings, options=['randomness.seed=1']))


def test_a_run_recorded_in_another_checkout_is_the_same_run(tmp_path):
    """Configs are recorded relative to the root; a record of an absolute path in
    another checkout of the same config is the same run (its contents are compared by
    the digest), any other path is not."""
    from benchmarks import experiments
    settings = dict(config='configs/x/kd_aver.py', options=[], config_digest='d')
    experiments.check_settings(str(tmp_path / 'a'), dict(settings,
                                                        config='/old/root/configs/x/kd_aver.py'))
    experiments.check_settings(str(tmp_path / 'a'), settings)
    experiments.check_settings(str(tmp_path / 'b'), dict(settings, config='/old/x/kd_mmkd.py'))
    with pytest.raises(experiments.ExperimentFailed, match='changed: config'):
        experiments.check_settings(str(tmp_path / 'b'), settings)
    with pytest.raises(experiments.ExperimentFailed, match='changed: config_digest'):
        experiments.check_settings(str(tmp_path / 'a'), dict(settings, config_digest='e'))


def test_settings_change_with_the_configs_contents_and_the_data(tmp_path):
    """Editing a base file or a model config a config names, or regenerating its data
    with other settings, is another run: its cached result is not reused."""
    from benchmarks import experiments
    (tmp_path / 'base.py').write_text('lr = 0.1\n')
    (tmp_path / 'student.py').write_text('width = 8\n')
    config = tmp_path / 'run.py'
    config.write_text(f"_base_ = ['./base.py']\nmodel = dict(student={str(tmp_path / 'student.py')!r})\n")
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'meta.json').write_text('{"num_val": 500}')
    options = [f'train_dataloader.dataset.data_root={data}/']
    digest = experiments.config_digest(str(config))
    fingerprint = experiments.data_fingerprints(options)
    assert fingerprint == {f'{data}/': {'num_val': 500}}
    (tmp_path / 'base.py').write_text('lr = 0.2\n')
    assert experiments.config_digest(str(config)) != digest
    changed = experiments.config_digest(str(config))
    (tmp_path / 'student.py').write_text('width = 16\n')
    assert experiments.config_digest(str(config)) != changed
    (data / 'meta.json').write_text('{"num_val": 3000}')
    assert experiments.data_fingerprints(options) != fingerprint


def test_options_that_cannot_pass_a_command_line_are_refused():
    assert matrix.option_strings({'a.b': [3], 'c': 'data/x/'}) == ['a.b=[3]', 'c=data/x/']
    with pytest.raises(ValueError, match='spaces, commas or quotes'):
        matrix.option_strings({'train_dataloader.dataset.data_root': '/my data/'})


def test_summary_pairs_each_row_with_the_student_alone_and_aver_over_seeds():
    """Means, stds and t-intervals over seeds; paired differences over the seeds both
    rows have, with their t-intervals (hand-computed); verdicts; the BN-gap flag."""
    def outcome(row, role, seed, score, batch_stats=None):
        exp = matrix.Experiment('classification', row, role, 'c.py', seed, f'w{row}{seed}', {})
        result = None if score is None else dict(score=score, s_per_iter=0.5, peak_mib=100.0,
                                                 score_batch_stats=batch_stats)
        return matrix.Outcome(exp, result, None if score is not None else 'boom')
    rows = matrix.summarise([
        outcome('student alone', 'student', 0, 40.0), outcome('student alone', 'student', 1, 42.0),
        outcome('student alone', 'student', 2, 41.0),
        outcome('KD: AVER', 'distilled', 0, 50.0), outcome('KD: AVER', 'distilled', 1, 54.0),
        outcome('KD: AVER', 'distilled', 2, 52.0, batch_stats=53.0),
        # +1, +1, +4 over AVER: mean 2, s = sqrt(3), t(2) = 4.303 -> half 4.303
        outcome('KD: CA-MKD', 'distilled', 0, 51.0), outcome('KD: CA-MKD', 'distilled', 1, 55.0),
        outcome('KD: CA-MKD', 'distilled', 2, 56.0, batch_stats=70.0),
        # +10, +10.5, +9.5 over AVER: clear of 0
        outcome('KD: MMKD', 'distilled', 0, 60.0), outcome('KD: MMKD', 'distilled', 1, 64.5),
        outcome('KD: MMKD', 'distilled', 2, 61.5), outcome('KD: MMKD', 'distilled', 3, None),
    ], TASKS)
    by_row = {r['row']: r for r in rows}
    aver, camkd, mmkd = by_row['KD: AVER'], by_row['KD: CA-MKD'], by_row['KD: MMKD']
    assert aver['mean'] == 52.0 and aver['std'] == pytest.approx(2.0)
    assert aver['interval'].high - 52.0 == pytest.approx(4.302653 * 2.0 / 3 ** 0.5, rel=1e-5)
    assert aver['gain'] == pytest.approx(11.0) and aver['vs_aver'] is None
    assert aver['vs_alone'].low == pytest.approx(11.0 - 4.302653 * 1.0 / 3 ** 0.5, rel=1e-5)
    assert by_row['student alone']['vs_alone'] is None
    assert camkd['vs_aver'].mean == pytest.approx(2.0)
    assert camkd['vs_aver'].half_width == pytest.approx(4.302653, rel=1e-5)
    assert camkd['vs_aver'].verdict == 'no difference'
    assert mmkd['vs_aver'].verdict == 'better' and mmkd['vs_aver'].n == 3
    assert (mmkd['runs'], mmkd['failed']) == (3, 1)
    assert camkd['bn_gap'] == pytest.approx(14.0) and camkd['bn_flags'] == [(2, 14.0)]
    assert aver['bn_flags'] == []  # a gap of 1 point is not flagged
    table = matrix.format_markdown(rows)
    assert '| KD: MMKD | 62.00 | 2.29 | [56.31, 67.69] | 3 (1 failed) | +21.00 [' in table
    assert '| +10.00 [+8.76, +11.24] * |' in table
    assert '| KD: CA-MKD | 54.00 | 2.65 |' in table and '| +2.00 [-2.30, +6.30] |' in table
    assert 'Better than AVER: KD: MMKD. Worse than AVER: none. No difference from AVER: ' \
        'KD: CA-MKD.' in table
    assert 'points: KD: CA-MKD seed 2 (+14.0).' in table
    assert '- KD: MMKD: boom' in table
    # Pooled over AVER, CA-MKD and MMKD: sum of squares 8 + 14 + 10.5 over 6 df; the
    # student alone 2 over 2 df; the differences to AVER (1, 1, 4 and 10, 10.5, 9.5)
    # 6 + 0.5 over 4 df.
    spread = matrix.seed_spread(rows)
    assert (spread['distilled'].std, spread['distilled'].df) == pytest.approx(
        ((32.5 / 6) ** 0.5, 6))
    assert (spread['alone'].std, spread['alone'].df) == pytest.approx((1.0, 2))
    assert (spread['vs_aver'].std, spread['vs_aver'].df) == pytest.approx(((6.5 / 4) ** 0.5, 4))
    assert 'student alone 1.00 [0.52, 6.28], 2 df' in table


def test_paired_intervals_against_hand_computed_values():
    from benchmarks import paired
    assert paired.t_quantile(2) == pytest.approx(4.302653, rel=1e-6)
    assert paired.t_quantile(9) == pytest.approx(2.262157, rel=1e-6)
    interval = paired.t_interval([1.0, 2.0, 3.0])
    assert (interval.low, interval.high) == pytest.approx((2 - 2.484138, 2 + 2.484138))
    single = paired.t_interval([5.0])
    assert single.low is None and single.verdict == 'no difference'
    assert single.format() == '+5.00 (n=1)'
    # Only common seeds are paired.
    difference = paired.paired_difference({0: 50.0, 1: 52.0, 5: 99.0}, {0: 48.0, 1: 49.0})
    assert difference.n == 2 and difference.mean == 2.5
    assert paired.paired_difference({0: 1.0}, {1: 1.0}) is None


def test_pooled_std_against_hand_computed_values():
    """The pooled std and its chi-square interval (quantiles of chi2 with 2 and 4 df
    from tables: 0.0506356 / 7.377759 and 0.484419 / 11.143287)."""
    from benchmarks import paired
    one = paired.pooled_std([[40.0, 42.0, 41.0]])
    assert (one.std, one.df) == (1.0, 2)
    assert (one.low, one.high) == pytest.approx(((2 / 7.377759) ** 0.5, (2 / 0.0506356) ** 0.5),
                                                rel=1e-5)
    two = paired.pooled_std([[1.0, 3.0], [5.0, 5.0, 8.0], [7.0]])  # SS 2 + 6, 3 df
    assert (two.std, two.df) == pytest.approx(((8 / 3) ** 0.5, 3))
    four = paired.pooled_std([[0.0, 2.0, 4.0], [1.0, 1.0, 4.0]])  # SS 8 + 6, 4 df
    assert four.low == pytest.approx((14 / 11.143287) ** 0.5, rel=1e-5)
    assert four.high == pytest.approx((14 / 0.484419) ** 0.5, rel=1e-5)
    assert four.format() == f'{(14 / 4) ** 0.5:.2f} [{(14 / 11.143287) ** 0.5:.2f}, ' \
        f'{(14 / 0.484419) ** 0.5:.2f}], 4 df'
    assert paired.pooled_std([[1.0], [2.0]]) is None


def test_bootstrap_over_images_pairs_the_draws():
    """Identical runs differ by exactly 0; a method right on 5 more images of 100 in
    every seed is +5 points, and no resample can make it negative."""
    from benchmarks import paired
    reference = {seed: [seed % 2, 1, 0, 1] * 25 for seed in range(3)}
    same = paired.bootstrap_difference(reference, reference, resamples=200)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    better = {seed: list(correct) for seed, correct in reference.items()}
    for correct in better.values():
        for index in (2, 6, 10, 14, 18):  # wrong in the reference
            correct[index] = 1
    interval = paired.bootstrap_difference(better, reference, resamples=500)
    assert interval.mean == pytest.approx(5.0) and interval.low >= 0.0
    assert interval.low < 5.0 < interval.high and interval.excludes_zero
    assert paired.bootstrap_difference(better, {0: [1, 0]}) is None  # other images


def _write_result(work_dir, score, weights=None):
    """A finished run's cached result (and a training log with teacher weights)."""
    work_dir.mkdir(parents=True)
    (work_dir / 'result.json').write_text(json.dumps(
        dict(score=score, train_seconds=1.0, s_per_iter=0.25, peak_mib=500.0)))
    if weights:
        (work_dir / 'run' / 'vis_data').mkdir(parents=True)
        (work_dir / 'run' / 'vis_data' / 'scalars.json').write_text(''.join(
            json.dumps({'iter': it, **weights}) + '\n' for it in (10, 20)))


def test_overhead_rounds_pool_each_phase_over_its_rounds():
    from benchmarks.benchmark import _figures, pool_rounds
    first = [dict(phase='student', **_figures([1.0, 3.0], 100.0, 90.0, 0.1)),
             dict(phase='aver', interval=None, **_figures([2.0], 120.0, 90.0, None))]
    second = [dict(phase='student', **_figures([2.0, 10.0], 80.0, 60.0, 0.3)),
              dict(phase='aver', interval=None, **_figures([4.0], 150.0, 100.0, None))]
    student, aver = pool_rounds([first, second])
    assert student['phase'] == 'student' and student['rounds'] == 2
    assert student['iters'] == 4 and student['mean'] == pytest.approx(4.0)
    assert student['median'] == pytest.approx(2.5)
    assert student['peak_mib'] == 100.0 and student['extra_mib'] == 20.0
    assert student['steal'] == pytest.approx(0.2)
    assert aver['mean'] == pytest.approx(3.0) and aver['steal'] is None
    assert aver['peak_mib'] == 150.0 and aver['extra_mib'] == 50.0
    assert student['round_means'] == [2.0, 6.0] and aver['round_means'] == [2.0, 4.0]


def test_overhead_rounds_rotate_the_phases_and_time_whole_update_intervals(monkeypatch):
    """Each round starts one phase later; an entry METHOD:N warms up over its first
    update and times whole intervals; the pooled rows keep the phases' order."""
    from benchmarks import benchmark
    calls = []

    def configure(config, interval, iters, warmup, batch_size, options):
        return Config(dict(config=config, interval=interval, iters=iters, warmup=warmup,
                           work_dir='/nonexistent'))

    def measure_bound(student_cfg, bound_cfg, warmup):
        calls.append('bound')
        return [dict(phase='student step alone', **benchmark._figures([1.0], 1, 0, None))], (
            None, None)

    def measure_training(cfg, phase, warmup):
        calls.append(f'{phase}:{cfg["iters"]}+{cfg["warmup"]}')
        assert warmup == cfg['warmup']
        return dict(phase=phase, interval=cfg['interval'],
                    **benchmark._figures([2.0], 1, 0, None))

    monkeypatch.setattr(benchmark, 'configure', configure)
    monkeypatch.setattr(benchmark, 'measure_bound', measure_bound)
    monkeypatch.setattr(benchmark, 'measure_training', measure_training)
    monkeypatch.setattr(benchmark, 'measure_teacher_variants', lambda *a: [])
    result = benchmark.measure_overhead(
        'student.py', dict(aver='aver.py', mmkd='mmkd.py'), ['aver', 'mmkd:8'], iters=10,
        warmup=5, batch_size=4, options={}, rounds=3)
    assert calls == ['bound', 'aver:10+5', 'mmkd:16+8',
                     'aver:10+5', 'mmkd:16+8', 'bound',
                     'mmkd:16+8', 'bound', 'aver:10+5']
    assert [(r['phase'], r['rounds'], r['iters']) for r in result['rows']] == [
        ('student step alone', 3, 3), ('aver', 3, 3), ('mmkd', 3, 3)]


def test_teacher_variant_table_compares_each_option_with_the_float32_forward():
    from benchmarks.benchmark import format_teacher_variant_table
    result = dict(rows=[dict(phase='student step alone', mean=1.0),
                        dict(phase='teacher a forward', mean=0.2)],
                  teacher_variants=[
                      dict(teacher='a', variant='bf16 autocast', mean=0.05,
                           top1_agreement=0.975, kd_drift=1.5e-3),
                      dict(teacher='a', variant='channels_last', mean=0.3,
                           top1_agreement=1.0, kd_drift=None)])
    lines = format_teacher_variant_table(result).splitlines()
    assert lines[2] == '| a: bf16 autocast | 0.0500 | 0.25x | 97.5% | 1.50e-03 |'
    assert lines[3] == '| a: channels_last | 0.3000 | 1.50x | 100.0% |  |'


def test_benchmark_reuses_finished_runs_and_reports_a_failed_one(tmp_path, shapes_root):
    """Every run but one finished before: nothing is retrained. The remaining run
    fails (its teachers' checkpoints are missing); it is reported in the table, the
    others are summarised, tables and plots are written and the exit status is 1."""
    work_root = tmp_path / 'bench'
    task = TASKS['classification']
    for run, score in zip(task.teachers, (70.0, 50.0, 60.0)):
        _write_result(work_root / 'classification' / 'teachers' / matrix.slug(run.name), score)
    for seed, (alone, single, aver) in enumerate([(40.0, 45.0, 50.0), (42.0, 47.0, None)]):
        root = work_root / 'classification' / f'seed{seed}'
        _write_result(root / 'student_alone', alone)
        _write_result(root / 'single_teacher_resnet18_w24', single)
        if aver is not None:
            _write_result(root / 'kd_aver', aver, {'r18w24.w_logit': 0.3, 'r50w8.w_logit': 0.7})
    result = run_tool('tools/benchmark.py', '--quick', '--methods', 'aver', '--seeds', '2',
                      '--jobs', '1', '--data-root', shapes_root, '--work-root', str(work_root))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count('(done before)') == 8
    assert 'runs 6/6 done: classification | KD: AVER | seed 1: FAILED: train.py exited ' \
        'with 1' in result.stdout
    assert result.stdout.count(': training (') == 1
    # The teachers' checkpoints are missing: their diagnostics fail, and the rest goes on.
    assert 'classification: teacher diagnostics FAILED' in result.stdout
    table = (work_root / 'benchmark.md').read_text()
    assert '| ResNet18-w24 | 70.00 |  |  | 1 |  |  |  | 0.250 | 500 |' in table
    assert '| single teacher (ResNet18-w24) | 46.00 | 1.41 | [33.29, 58.71] | 2 | +5.00 [' \
        '+5.00, +5.00] * | -5.00 (n=1) |' in table
    assert '| KD: AVER | 50.00 |  |  | 1 (1 failed) | +10.00 (n=1) |  |' in table
    assert 'resnet18_w24.pth' in table.split('Failed runs:')[1]  # the missing checkpoint
    with open(work_root / 'benchmark.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['row'] for r in rows] == ['ResNet18-w24', 'ResNet18-w16', 'ResNet50-w8',
                                        'student alone', 'single teacher (ResNet18-w24)',
                                        'KD: AVER']
    assert float(rows[-1]['gain']) == pytest.approx(10.0)  # paired: seed 0 only
    assert rows[-2]['scores'] == '0:45.00 1:47.00'
    assert osp.isfile(work_root / 'classification.png')
    assert osp.isfile(work_root / 'classification_teacher_weights.png')
    # The single-teacher config was written for a user to rerun with tools/train.py.
    single = Config.fromfile(str(work_root / 'classification' / 'configs'
                                 / 'kd_single_resnet18_w24.py'))
    assert [t.name for t in single.model.teachers] == ['r18w24']


@pytest.mark.parametrize('argv, message', [
    (['--methods', 'aver:5'], 'aver:5: METHOD:INTERVAL with --overhead only'),
    (['--methods', 'average'], "unknown methods ['average']"),
    (['--overhead', '--methods', 'aver', 'mmkd:x'], 'the interval must be an integer >= 1'),
    (['--overhead', '--methods', 'mmkd:5'], 'list aver among --methods'),
    (['--overhead', '--quick', '--seeds', '2'], '--quick, --seeds do(es) not apply to --overhead'),
    (['--hypergradients', '--methods', 'mmkd'], '--methods do(es) not apply to --hypergradients'),
    (['--hypergradients', '--overhead'], 'separate modes'),
    (['--overhead', '--load-from', 'x.pth'], '--load-from do(es) not apply to --overhead'),
    (['--hypergradients', '--load-from', 'missing.pth'], 'missing.pth: no such checkpoint'),
    (['--hypergradients', '--interval', '0'], '--interval must be >= 1'),
    (['--hypergradients', '--rounds', '2'], '--rounds do(es) not apply to --hypergradients'),
    (['--families', '--methods', 'mmkd_fd'], "['mmkd_fd']: the family matrix runs the methods"),
    (['--families', '--methods', 'aver_with_gfl'], 'runs in the method matrix only'),
    (['--overhead', '--methods', 'aver', 'aver_with_gfl'], 'runs in the method matrix only'),
    (['--task', 'detection'], '--task do(es) not apply to the matrix'),
    (['--cfg-options', 'train_cfg'], 'KEY=VALUE'),
    (['--jobs', '0'], '--jobs must be >= 1'),
    (['--seeds', '0'], '--seeds must be >= 1'),
    (['--tasks', 'classification', 'detection', '--data-root', 'x'],
     '--data-root needs a single task'),
])
def test_benchmark_refuses_bad_arguments(argv, message, monkeypatch, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location('benchmark_tool',
                                                  osp.join(ROOT, 'tools', 'benchmark.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr('sys.argv', ['benchmark.py', *argv])
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_info:
        tool.main()
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_pool_adds_its_teacher_after_the_tasks_own_and_is_paired_with_its_method(tmp_path):
    """The detection pools: the added teacher is trained as its own task trains its
    teachers (the classifier with the classification data and schedule, under
    classification/teachers, where that task's benchmark finds the same run), its
    checkpoint comes after the task's teachers, and the row is paired with AVER."""
    task = TASKS['detection']
    settings = {name: matrix.Settings(str(tmp_path), f'data/{name}', True, {}, validate=False)
                for name in ('detection', 'classification')}
    pools = list(task.pools)
    assert [p.key for p in pools] == ['aver_with_gfl', 'aver_with_classifier']
    added = matrix.plan_pool_teachers(pools + pools[1:], TASKS, settings)  # once each
    own = matrix.plan_teachers('classification', TASKS['classification'],
                               settings['classification'])
    gfl, classifier = added
    assert (gfl.task, gfl.row, classifier.task) == ('detection', 'GFL R34-w32', 'classification')
    assert classifier == own[0]  # the classification benchmark's own teacher run
    assert gfl.options['train_cfg.max_epochs'] == 8 and gfl.options['randomness.seed'] == 0
    students = matrix.plan_students('detection', task, settings['detection'], [0, 1],
                                    ['aver', 'aver_with_classifier'], best_teacher=None)
    rows = [e for e in students if e.method == 'aver_with_classifier']
    assert [e.seed for e in rows] == [0, 1] and rows[0].config == pools[1].config
    checkpoints = [rows[0].options[f'model.teachers.{i}.checkpoint'] for i in range(3)]
    assert checkpoints[:2] == task.teacher_files(str(tmp_path / 'detection' / 'teachers'))
    assert checkpoints[2] == classifier.export_to == matrix.pool_teacher_file(
        pools[1], str(tmp_path))
    from mmengine.config import Config
    teachers = Config.fromfile(pools[1].config).model.teachers
    assert len(teachers) == 3 and teachers[2].config.endswith('resnet18_w24_shapes10.py')

    def outcome(experiment, score):
        return matrix.Outcome(experiment, dict(score=score), None)
    scores = {'student alone': (4.0, 5.0), 'KD: AVER': (6.0, 7.0),
              f'KD: {pools[1].name}': (6.5, 8.5)}
    summary = {r['row']: r for r in matrix.summarise(
        [outcome(e, scores[e.row][e.seed]) for e in students], TASKS)}
    assert summary[f'KD: {pools[1].name}']['vs_method'].mean == pytest.approx(1.0)

