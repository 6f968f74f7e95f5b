"""Every weighting method, MMKD's hypergradient included, on the detection and
segmentation task views (tiny mmdet / mmseg models)."""
import pytest
import torch

from tiny_models import det_batch, det_distiller, seg_batch, seg_distiller

#: task -> (teachers fixture, distiller builder, batch builder)
TASKS = dict(detection=('det_teachers', det_distiller, det_batch),
             segmentation=('seg_teachers', seg_distiller, seg_batch))


@pytest.mark.parametrize('task', sorted(TASKS))
@pytest.mark.parametrize('weighting', [
    dict(type='UniformWeighting'), dict(type='EntropyWeighting'),
    dict(type='ConfidenceWeighting'), dict(type='RLAgentWeighting', warmup_epochs=0),
    dict(type='MetaWeightNet', batch_size=2)])
def test_every_weighting_runs(task, weighting, request):
    teachers, build_distiller, build_batch = TASKS[task]
    model = build_distiller(request.getfixturevalue(teachers), weighting=weighting)
    if weighting['type'] == 'RLAgentWeighting':
        model.weighting.begin_step(0.0, seed=0)
    inputs, samples = build_batch(model)
    losses = model.loss(inputs, samples)
    weights = model.last_step.weights
    assert weights.logit.shape == (2, 2) and torch.isfinite(losses['loss_kd'])
    if weighting['type'] != 'EntropyWeighting':
        assert torch.allclose(weights.logit.sum(1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize('task,optimizer', [('detection', 'SGD'), ('segmentation', 'AdamW')])
def test_mmkd_hypergradient_runs_through_the_task_model(task, optimizer, request):
    from mmkd_ext.engine.hooks import MetaWeightHook
    teachers, build_distiller, build_batch = TASKS[task]
    model = build_distiller(request.getfixturevalue(teachers),
                            weighting=dict(type='MetaWeightNet', batch_size=2))
    student_params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    options = dict(lr=0.01, momentum=0.9) if optimizer == 'SGD' else dict(lr=1e-3)
    inputs, samples = build_batch(model)
    outer = MetaWeightHook().hypergradient(
        model, getattr(torch.optim, optimizer)(student_params, **options), inputs, samples)
    assert outer > 0
    grads = [p.grad for p in model.weighting.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize('task', sorted(TASKS))
def test_distill_mode_gives_the_training_steps_distillation_terms(task, request):
    """MMKD's look-ahead runs the student up to its head only (forward mode='distill');
    its weighted terms are those of a full training step."""
    teachers, build_distiller, build_batch = TASKS[task]
    model = build_distiller(request.getfixturevalue(teachers),
                            weighting=dict(type='ConfidenceWeighting'))
    inputs, samples = build_batch(model)
    torch.manual_seed(0)  # the same dropout draws in the decode head
    full = model(inputs, samples, mode='loss')
    torch.manual_seed(0)
    distill = model(inputs, samples, mode='distill')
    assert set(distill) == {'loss_kd', 'loss_feat'}
    for key, value in distill.items():
        assert torch.allclose(value, full[key], rtol=1e-5), key
