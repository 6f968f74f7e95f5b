"""Evaluating with BatchNorm batch statistics: mmkd_ext/utils/batch_stats.py and
``tools/test.py --bn-batch-stats``."""
import json

import pytest
import torch
import torch.nn as nn

from conftest import STUDENT_CONFIG, run_tool, save_checkpoint
from mmkd_ext.utils.batch_stats import batch_statistics, evaluated_model, format_comparison


def bn_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.SyncBatchNorm(4, momentum=None), nn.Flatten(), nn.Linear(4 * 36, 6),
                          nn.BatchNorm1d(6))
    model.train()
    for _ in range(3):  # running statistics away from their initial 0 / 1
        model(torch.randn(5, 3, 8, 8) * 2 + 1)
    return model.eval()


def test_batch_statistics_restores_buffers_mode_and_momentum():
    model = bn_model()
    model[0].train()  # a non-BN module keeps its mode
    model[3].train()  # a BN layer gets its own mode back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    momenta = [m.momentum for m in model.modules() if hasattr(m, 'momentum')]
    with batch_statistics(model) as layers:
        assert len(layers) == 3
        assert model[0].training and not model[2].training
        model.eval()  # as a test loop does: the BN layers stay on batch statistics
        assert all(m.training for m in layers) and not model[2].training
        model(torch.randn(4, 3, 8, 8))
        for k, v in model.state_dict().items():
            if 'running' in k:  # momentum 0: the running statistics do not move
                assert torch.equal(v, before[k]), k
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert [m.momentum for m in model.modules() if hasattr(m, 'momentum')] == momenta
    assert [m.training for m in model] == [False, False, False, True, False, False, False]
    assert 'train' not in vars(model[1])
    model.train()
    assert model[1].training  # Module.train works again


def test_batch_norm_inside_uses_the_batch_statistics():
    model = bn_model()
    bn = model[1]
    x = torch.randn(6, 4, 5, 5) * 3 + 2
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    weight, bias = bn.weight.view(1, -1, 1, 1), bn.bias.view(1, -1, 1, 1)
    expected = (x - mean) / torch.sqrt(var + bn.eps) * weight + bias
    with batch_statistics(model), torch.no_grad():
        assert torch.allclose(bn(x), expected, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(bn(x), expected, atol=1e-3)  # running statistics again


def test_model_without_batch_norm_yields_no_layer():
    model = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    with batch_statistics(model) as layers:
        assert layers == []


def test_a_distiller_evaluates_its_student():
    distiller = nn.Module()
    distiller.student = bn_model()
    assert evaluated_model(distiller) is distiller.student


def test_comparison_line_names_both_scores():
    line = format_comparison({'accuracy/top1': 40.0}, {'accuracy/top1': 48.5})
    assert 'accuracy/top1 40.00 -> 48.50 (+8.50)' in line


@pytest.fixture(scope='module')
def tiny_shapes(tmp_path_factory):
    from mmkd_ext.synthetic_data import generate_shapes10
    root = str(tmp_path_factory.mktemp('shapes10_bn'))
    generate_shapes10(root, num_train=10, num_val=20)
    return root


def test_test_tool_writes_batch_statistics_metrics(tiny_shapes, tmp_path):
    from mmengine.config import Config
    checkpoint = save_checkpoint(Config.fromfile(STUDENT_CONFIG).model, tmp_path / 'student.pth')
    options = [f'test_dataloader.dataset.data_root={tiny_shapes}',
               'test_dataloader.batch_size=8', 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False']
    metrics_path = tmp_path / 'metrics.json'
    result = run_tool('tools/test.py', STUDENT_CONFIG, checkpoint, '--work-dir', str(tmp_path),
                      '--metrics-json', str(metrics_path), '--bn-batch-stats',
                      '--cfg-options', *options)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics) == {'accuracy/top1', 'bn_batch_stats/accuracy/top1'}
    assert 0.0 <= metrics['bn_batch_stats/accuracy/top1'] <= 100.0
    assert 'BN running -> batch statistics: accuracy/top1' in result.stdout


def test_batch_statistics_pass_draws_batches_of_mixed_classes():
    """A test set stored by class gives one-class batches in order; the pass's loader
    draws the same samples, each once, in a seeded random order."""
    from torch.utils.data import DataLoader
    from mmkd_ext.utils.batch_stats import shuffled_loader
    labels = [i // 10 for i in range(40)]  # sorted by class, as folder datasets are
    ordered = DataLoader(labels, batch_size=10, shuffle=False)
    assert [len(set(b.tolist())) for b in ordered] == [1, 1, 1, 1]
    batches = [b.tolist() for b in shuffled_loader(ordered)]
    assert sorted(sum(batches, [])) == labels
    assert all(len(set(b)) > 1 for b in batches)
    assert batches == [b.tolist() for b in shuffled_loader(ordered)]  # seeded


def test_reestimated_statistics_are_the_average_of_the_batch_statistics():
    from mmkd_ext.utils.batch_stats import reestimate_batch_norm_statistics
    model = bn_model()
    bn = model[1]
    momenta = [m.momentum for m in (model[1], model[3], model[6])]
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(5, 3, 8, 8, generator=g) * 3 - 1 for _ in range(3)]
    conv = [model[0](x).detach() for x in batches]
    count = reestimate_batch_norm_statistics(model, batches, model)
    assert count == 3
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in conv])
    variances = torch.stack([x.var(dim=(0, 2, 3)) for x in conv])  # unbiased, as BN keeps
    assert torch.allclose(bn.running_mean, means.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, variances.mean(0), atol=1e-4)
    assert [m.momentum for m in (model[1], model[3], model[6])] == momenta
    assert not any(m.training for m in model)  # the mode it had


def test_reestimation_without_batches_keeps_the_statistics():
    from mmkd_ext.utils.batch_stats import reestimate_batch_norm_statistics
    model = bn_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert reestimate_batch_norm_statistics(model, [], model) == 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_reestimation_keeps_frozen_and_unreached_layers_exactly():
    """A BN layer that model.train() leaves in eval mode (norm_eval) and one the forward
    never reaches keep their statistics; the trained one gets new ones."""
    from mmkd_ext.utils.batch_stats import reestimate_batch_norm_statistics

    class NormEval(nn.Module):
        def __init__(self):
            super().__init__()
            self.frozen, self.trained = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
            self.unreached = nn.BatchNorm1d(3)

        def train(self, mode=True):
            super().train(mode)
            self.frozen.eval()  # as mmdet's norm_eval=True
            return self

        def forward(self, x):
            return self.trained(self.frozen(x))

    model = NormEval()
    for m in (model.frozen, model.trained, model.unreached):
        m.running_mean.fill_(2.0)
        m.running_var.fill_(3.0)
        m.num_batches_tracked.fill_(7)
    batches = [torch.randn(8, 3) * 5 + 1 for _ in range(3)]
    assert reestimate_batch_norm_statistics(model, batches, model) == 3
    for m in (model.frozen, model.unreached):
        assert torch.equal(m.running_mean, torch.full((3, ), 2.0))
        assert torch.equal(m.running_var, torch.full((3, ), 3.0))
        assert int(m.num_batches_tracked) == 7
    # The trained layer sees the frozen layer's output: its mean is that output's.
    frozen_out = [(b - 2.0) / torch.sqrt(torch.tensor(3.0) + 1e-5) for b in batches]
    expected = torch.stack([o.mean(0) for o in frozen_out]).mean(0)
    assert torch.allclose(model.trained.running_mean, expected, atol=1e-5)
