"""MMKD: weight networks and the bi-level MetaWeightHook."""
import copy
import uuid

import pytest
import torch
from mmengine.runner import Runner

from mmkd_ext.engine.hooks import MetaWeightHook
from mmkd_ext.structures import KDStep, TeacherWeights
from conftest import load_kd_config, make_batch, make_distiller


@pytest.fixture
def mmkd(two_teachers):
    """A tiny MMKD distiller with an SGD optimizer that has taken one step (its weight
    nets seeded: the finite-difference check must not depend on the tests run before)."""
    torch.manual_seed(0)
    model = make_distiller(two_teachers, weighting=dict(type='MetaWeightNet', batch_size=4))
    params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    inputs, samples = make_batch(model, batch_size=4)
    losses = model(inputs, samples, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    optimizer.step()
    optimizer.zero_grad()
    return model, optimizer


def test_weights_have_shape_k_and_rows_sum_to_one(mmkd):
    model, _ = mmkd
    inputs, samples = make_batch(model, batch_size=4, seed=1)
    batch, _ = model.compute_kd_batch(inputs, samples)
    weights = model.weighting(batch)
    for w in (weights.logit, weights.feature):
        assert w.shape == (4, 2)
        assert torch.allclose(w.sum(1), torch.ones(4))
    assert not torch.equal(weights.logit, weights.feature)
    assert not weights.logit.requires_grad  # regular step: detached


def test_regular_step_sends_no_gradient_to_the_weight_nets(mmkd):
    model, _ = mmkd
    inputs, samples = make_batch(model, batch_size=4, seed=2)
    losses = model(inputs, samples, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.weighting.parameters())
    assert model.student.head.fc.weight.grad is not None


def test_feature_net_needs_the_configured_batch_size(mmkd):
    model, _ = mmkd
    inputs, samples = make_batch(model, batch_size=3)
    with pytest.raises(ValueError, match='drop_last=True'):
        model(inputs, samples, mode='loss')
    model.weighting.feature_input = 'sorted_similarity'  # size-independent variant
    losses = model(inputs, samples, mode='loss')
    assert torch.isfinite(losses['loss_kd'])


def snapshot(model, optimizer):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            copy.deepcopy(optimizer.state_dict()))


def test_lookahead_leaves_student_bn_stats_and_optimizer_bitwise_unchanged(mmkd):
    model, optimizer = mmkd
    state, opt_state = snapshot(model, optimizer)
    inputs, samples = make_batch(model, batch_size=4, seed=3)
    MetaWeightHook().hypergradient(model, optimizer, inputs, samples)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.weighting.parameters())
    after, opt_after = snapshot(model, optimizer)
    for key in state:
        assert torch.equal(state[key], after[key]), key
    for pid, entry in opt_state['state'].items():
        assert torch.equal(entry['momentum_buffer'], opt_after['state'][pid]['momentum_buffer'])
    assert model.student.backbone.bn1.num_batches_tracked.item() == 1


def test_hypergradient_matches_finite_differences(mmkd):
    model, optimizer = mmkd
    model.to(torch.float64)
    for group in optimizer.state.values():
        group['momentum_buffer'] = group['momentum_buffer'].double()
    inputs, samples = make_batch(model, batch_size=4, seed=4)
    inputs = inputs.double()
    # One distillation step, then the task-loss step. (With a second distillation
    # step the nets' student inputs, detached as in MMKD, depend on the stepped
    # weights; finite differences would include that path, the defined
    # hypergradient does not.)
    hook = MetaWeightHook(inner_kd_steps=1, inner_ce_steps=1)

    def outer():
        return hook.meta_objective(model, optimizer, inputs, samples)[0]

    hook.hypergradient(model, optimizer, inputs, samples)
    checked = 0
    for param in (model.weighting.logit_net[0].weight, model.weighting.feature_net[2].bias):
        grad = param.grad.clone()
        for flat_index in torch.topk(grad.abs().flatten(), 2).indices.tolist():
            index = torch.unravel_index(torch.tensor(flat_index), param.shape)
            # Small: the outer loss is only piecewise smooth (the task-loss step holds
            # the student's ReLU masks, which switch where a pre-activation crosses 0;
            # here switches lie 1e-4 apart and one within 1e-6 of the point), and in
            # float64 the difference keeps about 7 digits at this step.
            eps = 1e-7
            with torch.no_grad():
                param[index] += eps
            plus = outer().item()
            with torch.no_grad():
                param[index] -= 2 * eps
            minus = outer().item()
            with torch.no_grad():
                param[index] += eps
            numeric = (plus - minus) / (2 * eps)
            assert grad[index].item() == pytest.approx(numeric, rel=1e-4, abs=1e-9)
            checked += 1
    assert checked == 4


def test_hard_buffer_fills_first_then_takes_misclassified_samples(mmkd):
    from mmpretrain.structures import DataSample
    model, _ = mmkd
    hook = MetaWeightHook(buffer_size=4, quiz_batch_size=2)

    def batch_of(indices, labels):
        samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(l)
                   for i, l in zip(indices, labels)]
        return dict(inputs=[], data_samples=samples)

    hook._update_buffer(model, batch_of([0, 1, 2], [0, 0, 0]))
    hook._update_buffer(model, batch_of([3, 4, 5], [0, 0, 0]))
    assert hook.buffer.tolist() == [0, 1, 2, 3]  # filled from the first samples
    # The student predicts classes 0..3; samples 101 and 103 are wrong.
    data = batch_of([100, 101, 102, 103], [0, 9, 2, 9])
    logits = torch.eye(10)[:4] * 5
    batch, _ = model.compute_kd_batch(*make_batch(model, 4))
    batch.student_logits, batch.data_samples = logits, data['data_samples']
    model.last_step = KDStep(batch=batch, weights=TeacherWeights(logits, logits))
    for _ in range(5):
        hook._update_buffer(model, data)
    new = set(hook.buffer.tolist()) - {0, 1, 2, 3}
    assert new and new <= {101, 103}


def mmkd_runner(shapes_root, teacher_dir, work_dir, max_iters, interval=2, resume=False):
    cfg = load_kd_config('mmkd', shapes_root, teacher_dir, max_iters=max_iters)
    cfg.merge_from_dict({
        'model.weighting.batch_size': 16,
        'custom_hooks': [dict(type='mmkd_ext.MetaWeightHook', interval=interval,
                              buffer_size=32, quiz_batch_size=16)],
    })
    cfg.work_dir, cfg.resume = str(work_dir), resume
    cfg.experiment_name = f'mmkd_{uuid.uuid4().hex[:8]}'
    cfg.randomness = dict(seed=0, deterministic=True)
    return Runner.from_cfg(cfg)


def test_training_moves_the_nets_and_logs_meta_terms(shapes_root, teacher_dir, tmp_path):
    runner = mmkd_runner(shapes_root, teacher_dir, tmp_path, max_iters=4, interval=1)
    before = {k: v.clone() for k, v in runner.model.weighting.state_dict().items()}
    runner.train()
    after = runner.model.weighting.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)
    # No stale meta gradient is left for the student optimizer to apply.
    assert all(p.grad is None for p in runner.model.weighting.parameters())
    scalars = runner.message_hub.log_scalars
    assert 'train/meta_loss' in scalars and 'train/meta_time_share' in scalars
    assert 0 < scalars['train/meta_time_share'].current() < 1
    weights = runner.model.last_step.weights.logit
    assert weights.std(dim=1).mean() > 0  # not uniform


@pytest.mark.parametrize('optimizer_type,options', [
    ('SGD', dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    ('SGD', dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    ('SGD', dict(lr=0.1, momentum=0.0, weight_decay=1e-3)),
    ('Adam', dict(lr=0.01, weight_decay=1e-3)),
    ('Adam', dict(lr=0.01, betas=(0.8, 0.99), amsgrad=True)),
    ('AdamW', dict(lr=0.01, weight_decay=0.05)),
    ('AdamW', dict(lr=0.01, weight_decay=0.05, amsgrad=True, eps=1e-6)),
])
def test_optimizer_mirror_matches_torch(optimizer_type, options):
    """Mirrored steps, started from a live optimizer with history, land where the
    live optimizer's own steps land."""
    from mmkd_ext.engine.optimizers.lookahead import mirror_optimizer
    torch.manual_seed(0)
    live = torch.nn.Linear(5, 3)
    optimizer = getattr(torch.optim, optimizer_type)(live.parameters(), **options)
    data = [torch.randn(8, 5) for _ in range(5)]
    for x in data[:2]:  # build up a momentum / moment history first
        optimizer.zero_grad()
        live(x).pow(2).mean().backward()
        optimizer.step()
    named = dict(live.named_parameters())
    mirror = mirror_optimizer(optimizer, named)
    params = {n: p.detach().clone().requires_grad_() for n, p in named.items()}
    for x in data[2:]:
        loss = torch.func.functional_call(live, params, (x, )).pow(2).mean()
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        params = {n: p.detach().requires_grad_() for n, p in mirror.step(params, grads).items()}
        optimizer.zero_grad()
        live(x).pow(2).mean().backward()
        optimizer.step()
    for name, param in live.named_parameters():
        assert torch.allclose(params[name], param, atol=1e-6), name


def test_adam_mirror_hypergradient_is_finite_where_gradients_vanish():
    """The regression target moves with ``scale``, so the Adam steps' direction
    depends on it; an input column of zeros gives weight-gradient entries that are
    exactly 0 (a zero second moment). The second-order gradient through the steps
    stays finite and matches finite differences."""
    from mmkd_ext.engine.optimizers.lookahead import differentiable_steps, mirror_optimizer
    torch.manual_seed(0)
    live = torch.nn.Linear(4, 2).double()
    optimizer = torch.optim.AdamW(live.parameters(), lr=0.05, weight_decay=0.01)
    x = torch.randn(6, 4, dtype=torch.double)
    x[:, 0] = 0
    scale = torch.tensor(1.5, dtype=torch.double, requires_grad=True)

    def outer(scale_value):
        mirror = mirror_optimizer(optimizer, dict(live.named_parameters()))
        params = {n: p.detach().requires_grad_() for n, p in live.named_parameters()}
        target = scale_value * torch.tensor([1.0, -2.0], dtype=torch.double)
        stepped = differentiable_steps(
            params, {}, lambda t: (torch.func.functional_call(live, t, (x, )) - target)
            .pow(2).mean(), mirror, num_steps=2)
        return torch.func.functional_call(live, stepped, (x + 1, )).sum()

    grad, = torch.autograd.grad(outer(scale), scale)
    eps = 1e-6
    numeric = (outer(scale.detach() + eps) - outer(scale.detach() - eps)) / (2 * eps)
    assert torch.isfinite(grad) and grad.abs() > 1e-3
    assert torch.allclose(grad, numeric, rtol=1e-4)


def test_what_the_look_ahead_cannot_mirror_is_refused_before_training(two_teachers):
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    model = make_distiller(two_teachers, weighting=dict(type='MetaWeightNet', batch_size=4))
    student_params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    sgd = OptimWrapper(torch.optim.SGD(student_params, lr=0.1))
    MetaWeightHook.check_student_supported(model, sgd)  # fine
    with pytest.raises(TypeError, match='SGD, Adam and AdamW, not RMSprop'):
        MetaWeightHook.check_student_supported(
            model, OptimWrapper(torch.optim.RMSprop(student_params)))
    with pytest.raises(TypeError, match='one student optimizer; got OptimWrapperDict'):
        MetaWeightHook.check_student_supported(model, OptimWrapperDict(student=sgd))
    torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.student)
    with pytest.raises(TypeError, match="SyncBN does not support.*type='BN'"):
        MetaWeightHook.check_student_supported(model, sgd)


class OnOtherDevice:
    """Stands in for a tensor that a checkpoint was mapped to another device with."""

    def __init__(self, tensor):
        self.tensor = tensor

    def cpu(self):
        return self.tensor


def test_hook_state_is_restored_on_resume_only_and_from_any_device(mmkd):
    from types import SimpleNamespace

    from mmengine.optim import OptimWrapper
    model, _ = mmkd
    saved = MetaWeightHook(seed=1)
    saved.buffer = torch.arange(7)
    saved.meta_optimizer = torch.optim.Adam(model.weighting.parameters())
    checkpoint = {}
    saved.before_save_checkpoint(None, checkpoint)
    state = checkpoint['meta_weight_hook']
    state['buffer'], state['generator'] = map(OnOtherDevice, (state['buffer'], state['generator']))

    optim_wrapper = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))

    def runner(iteration):
        return SimpleNamespace(model=model, iter=iteration, optim_wrapper=optim_wrapper,
                               train_dataloader=SimpleNamespace(dataset=[], collate_fn=None))

    fresh = MetaWeightHook()
    fresh.after_load_checkpoint(None, checkpoint)
    fresh.before_train(runner(0))  # load_from: a new run, the hook starts afresh
    assert len(fresh.buffer) == 0
    resumed = MetaWeightHook()
    resumed.after_load_checkpoint(None, checkpoint)
    resumed.before_train(runner(3))
    assert resumed.buffer.tolist() == list(range(7))
    assert torch.equal(resumed.generator.get_state(), saved.generator.get_state())


def population_statistics(student, runner):
    """Each BN layer's (mean, var) of ``student``'s weights over the whole train set."""
    from torch.nn.modules.batchnorm import _BatchNorm
    from mmkd_ext.utils.batch_stats import reestimate_batch_norm_statistics
    student = copy.deepcopy(student)
    dataset, collate = runner.train_dataloader.dataset, runner.train_dataloader.collate_fn
    chunks = [list(range(i, min(i + 16, len(dataset)))) for i in range(0, len(dataset), 16)]
    batches = (runner.model.data_preprocessor(collate([dataset[i] for i in c]), True)
               for c in chunks)
    reestimate_batch_norm_statistics(student, batches,
                                     lambda d: student(d['inputs'], mode='tensor'))
    return {n: (m.running_mean, m.running_var) for n, m in student.named_modules()
            if isinstance(m, _BatchNorm)}


def test_training_ends_with_bn_statistics_of_the_final_student(shapes_root, teacher_dir,
                                                                tmp_path):
    """The running statistics (an average of batches seen with earlier weights) are
    re-estimated from the final weights after the last iteration."""
    runner = mmkd_runner(shapes_root, teacher_dir, tmp_path, max_iters=2, interval=2)
    runner.train()
    student = runner.model.student
    reference = population_statistics(student, runner)
    for name, module in student.named_modules():
        if name in reference:
            mean, var = reference[name]
            std = var.sqrt() + 1e-3
            assert ((module.running_mean - mean).abs() / std).mean() < 0.1, name
            assert ((module.running_var / var).log().abs()).mean() < 0.1, name
