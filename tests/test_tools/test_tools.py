"""The command-line tools, run as a user runs them."""
import json
import re
import os.path as osp

import pytest
import torch

from conftest import KD_CONFIG, ROOT, STUDENT_CONFIG, cli_options, kd_overrides, run_tool


@pytest.fixture(scope='module')
def trained_kd(shapes_root, teacher_dir, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('kd_cli')
    result = run_tool('tools/train.py', KD_CONFIG.format('entropy'), '--work-dir',
                      str(work_dir), *cli_options(shapes_root, teacher_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(work_dir / 'last_checkpoint') as f:
        return work_dir, f.read().strip(), result.stdout + result.stderr


def test_train_logs_distillation_terms_per_teacher(trained_kd):
    _, checkpoint, log = trained_kd
    assert osp.isfile(checkpoint)
    for key in ('student.loss', 'loss_kd', 'loss_feat', 'r18w24.w_logit', 'r50w8.kd'):
        assert key in log


def test_test_tool_evaluates_the_student(trained_kd, shapes_root, teacher_dir):
    work_dir, checkpoint, _ = trained_kd
    metrics_path = work_dir / 'metrics.json'
    result = run_tool('tools/test.py', KD_CONFIG.format('entropy'), checkpoint, '--work-dir',
                      str(work_dir), '--metrics-json', str(metrics_path),
                      *cli_options(shapes_root, teacher_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(metrics_path.read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


def test_exported_student_loads_in_plain_mmpretrain(trained_kd, shapes_root, tmp_path):
    work_dir, checkpoint, _ = trained_kd
    out = tmp_path / 'student.pth'
    result = run_tool('tools/export_student.py', checkpoint, str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    # Plain mmpretrain, no mmkd_ext import in the child process.
    script = (
        'import sys, glob, torch\n'
        'from mmengine.config import Config\n'
        'from mmpretrain.apis import ImageClassificationInferencer\n'
        f'cfg = Config.fromfile({STUDENT_CONFIG!r})\n'
        'cfg.pop("custom_imports")\n'
        f'inferencer = ImageClassificationInferencer(cfg, pretrained={str(out)!r}, device="cpu")\n'
        f'image = sorted(glob.glob({shapes_root!r} + "/val/03_frame/*.png"))[0]\n'
        'result = inferencer(image)[0]\n'
        'print("PRED", result["pred_label"], len(result["pred_scores"]))\n')
    result = run_tool('-c', script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'PRED' in result.stdout and result.stdout.strip().endswith(' 10')
    exported = torch.load(out, weights_only=True)['state_dict']
    distilled = torch.load(checkpoint, weights_only=False)['state_dict']
    assert torch.equal(exported['backbone.conv1.weight'], distilled['student.backbone.conv1.weight'])
    assert not any(k.startswith(('adapters', 'student.')) for k in exported)


def test_amp_without_cuda_is_a_clear_message(shapes_root, teacher_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: --amp is allowed')
    result = run_tool('tools/train.py', STUDENT_CONFIG, '--amp', '--work-dir', str(tmp_path))
    assert result.returncode != 0
    assert '--amp needs a CUDA device' in result.stderr
    assert 'Traceback' not in result.stderr


def test_make_data_cli_is_idempotent(tmp_path):
    args = ('tools/make_data.py', 'classification', '--out', str(tmp_path / 's'),
            '--train', '20', '--val', '10')
    first, second = run_tool(*args), run_tool(*args)
    assert first.returncode == second.returncode == 0
    assert 'written' in first.stdout and 'skipped' in second.stdout


def test_teacher_weight_plot_reads_the_training_log(trained_kd):
    from benchmarks.plotting import (find_scalars, plot_teacher_weights,
                                          read_teacher_weights)
    work_dir, _, _ = trained_kd
    series = read_teacher_weights(find_scalars(str(work_dir)))
    assert {'r18w24.w_logit', 'r18w16.w_logit', 'r50w8.w_logit'} <= set(series)
    # Entropy weights of three teachers sum to (K - 1) / K in every logged batch.
    for step in range(len(series['r18w24.w_logit'])):
        total = sum(series[f'{t}.w_logit'][step][1] for t in ('r18w24', 'r18w16', 'r50w8'))
        assert total == pytest.approx(2 / 3, abs=1e-4)
    path = plot_teacher_weights(str(work_dir))
    assert osp.getsize(path) > 10_000


def test_dist_train_runs_two_cpu_processes(shapes_root, teacher_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('covers the CPU (gloo) path')
    options = kd_overrides(shapes_root, teacher_dir, batch_size=8)
    options.update({'train_cfg.max_epochs': 1, 'param_scheduler': '[]',
                    'val_dataloader.batch_size': 40})
    import os
    import subprocess
    env = dict(os.environ, PORT='29613', PYTHON=__import__('sys').executable)
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', KD_CONFIG.format('aver'), '2', '--work-dir',
         str(tmp_path), '--cfg-options'] + [f'{k}={v}' for k, v in options.items()],
        cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert "'backend': 'gloo'" in log  # chosen automatically without CUDA
    assert osp.isfile(tmp_path / 'epoch_1.pth')


def test_every_task_has_a_config_per_benchmark_method():
    from benchmarks.methods import METHODS
    from benchmarks.tasks import make_tasks
    for task in make_tasks(ROOT).values():
        for method in METHODS:
            assert osp.isfile(task.distill_config(method)), (task.dataset, method)
        assert all(osp.isfile(run.config) for run in task.runs)


def test_overhead_benchmark_prints_each_phase_against_the_bound(shapes_root, teacher_dir):
    result = run_tool('tools/benchmark.py', '--overhead', '--iters', '1', '--warmup', '1',
                      '--rounds', '2', '--batch-size', '8', '--methods', 'aver',
                      '--data-root', shapes_root, '--teacher-dir', teacher_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    bound_table, _, variant_table = result.stdout.partition("The teachers' speed options")
    rows = {line.split('|')[1].strip(): line.split('|')[2:-1]
            for line in bound_table.splitlines() if line.startswith('| ')}
    assert {'student step alone', 'teacher r18w24 forward', 'teacher r18w16 forward',
            'teacher r50w8 forward', '**bound** (a) + sum(b)', 'aver'} <= set(rows)
    phases = [r for name, r in rows.items() if name.startswith(('student', 'teacher'))]
    bound = float(rows['**bound** (a) + sum(b)'][1])
    assert bound == pytest.approx(sum(float(r[1]) for r in phases), abs=2e-4)
    by_mean, by_median = (float(v.strip().rstrip('x')) for v in rows['aver'][3].split('/'))
    assert by_mean == pytest.approx(float(rows['aver'][1]) / bound, abs=0.01)
    bound_median = float(rows['**bound** (a) + sum(b)'][2])
    assert by_median == pytest.approx(float(rows['aver'][2]) / bound_median, abs=0.01)
    assert rows['aver'][4].strip() == '1.00x / 1.00x'
    variants = {line.split('|')[1].strip(): line.split('|')[2:-1]
                for line in variant_table.splitlines() if line.startswith('| r')}
    assert set(variants) == {f'{t}: {v}' for t in ('r18w24', 'r18w16', 'r50w8')
                             for v in ('channels_last', 'bf16 autocast')}
    for name, row in variants.items():
        agreement = float(row[2].strip().rstrip('%'))
        assert 0 <= agreement <= 100 and float(row[3]) > -1e-5  # a KL, up to rounding


def test_demo_reuses_finished_runs_and_distils_with_the_chosen_methods(tmp_path):
    """Every selected run has a result already: the demo trains nothing, prints the
    table of the teachers, the student alone and the chosen method only, and plots."""
    from benchmarks.tasks import make_tasks
    work_root = tmp_path / 'work'
    task = make_tasks(ROOT)['classification']
    for run in task.runs:
        if run.method not in (None, 'aver'):
            continue
        work_dir = work_root / re.sub(r'[^a-z0-9]+', '_', run.name.lower()).strip('_')
        (work_dir / 'run' / 'vis_data').mkdir(parents=True)
        score = dict(teacher=60.0, student=40.0, distilled=50.0)[run.role]
        (work_dir / 'demo_result.json').write_text(json.dumps(
            dict(name=run.name, role=run.role, score=score, train_seconds=1.0)))
        (work_dir / 'run' / 'vis_data' / 'scalars.json').write_text(
            json.dumps({'iter': 10, 'a.w_logit': 0.4, 'b.w_logit': 0.6}) + '\n')
    result = run_tool('tools/demo.py', '--methods', 'aver', '--work-root', str(work_root),
                      '--data-root', str(tmp_path / 'data'))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert ': training (' not in result.stdout
    table = (work_root / 'demo_results.md').read_text()
    assert '| KD: AVER | distilled | 50.00 | +10.00 |' in table and 'MMKD' not in table
    assert (work_root / 'demo_results.png').is_file()
    assert (work_root / 'kd_aver' / 'teacher_weights.png').is_file()
    rows = [line.split(' | ')[0].lstrip('| ') for line in table.splitlines()[2:]]
    assert rows == [run.name for run in task.runs if run.method in (None, 'aver')]  # in order
    refused = run_tool('tools/demo.py', '--methods', 'nope', '--work-root', str(work_root))
    assert refused.returncode != 0 and "unknown methods ['nope']" in refused.stderr
    refused = run_tool('tools/demo.py', '--jobs', '0', '--work-root', str(work_root),
                       '--data-root', str(tmp_path / 'data'))
    assert refused.returncode != 0 and '--jobs must be at least 1' in refused.stderr
