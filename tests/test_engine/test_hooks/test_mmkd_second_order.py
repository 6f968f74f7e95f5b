"""MMKD's look-ahead and second derivatives: the twice-differentiable substitutes
against the ops they replace, the detection of ops without a second derivative
(first-order task-loss steps, refused distillation steps), the CUDA focal-loss path
emulated on CPU, and the probe of MetaWeightHook before training."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradgradcheck
from torch.autograd.function import once_differentiable

from mmkd_ext.engine.optimizers import second_order
from mmkd_ext.engine.optimizers.second_order import (
    SUBSTITUTES, SecondOrderAudit, SecondOrderError, grid_sample_pytorch,
    hardsigmoid, hardswish, roi_align_pytorch, sigmoid_focal_loss_pytorch,
    twice_differentiable_ops)


# ------------------------------------------------------------ the substitutes
def random_rois(num, height, width, scale, generator, dtype):
    """``[num, 5]`` RoIs in image pixels over 2 images, some partly or wholly outside
    the feature map and some degenerate (zero width)."""
    size = torch.tensor([width, height, width, height], dtype=dtype) / scale
    corners = (torch.rand(num, 4, generator=generator, dtype=dtype) * 1.4 - 0.2) * size
    boxes = torch.cat([torch.minimum(corners[:, :2], corners[:, 2:]),
                       torch.maximum(corners[:, :2], corners[:, 2:])], dim=1)
    boxes[0, 2] = boxes[0, 0]  # zero width
    batch = torch.randint(2, (num, 1), generator=generator).to(dtype)
    return torch.cat([batch, boxes], dim=1)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('pool_mode', ['avg', 'max'])
def test_roi_align_substitute_matches_mmcv_forward(dtype, aligned, sampling_ratio, pool_mode):
    from mmcv.ops import roi_align
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 11, 13, generator=g, dtype=dtype)
    rois = random_rois(24, 11, 13, 0.25, g, dtype)
    expected = roi_align(feats, rois, (5, 4), 0.25, sampling_ratio, pool_mode, aligned)
    actual = roi_align_pytorch(feats, rois, (5, 4), 0.25, sampling_ratio, pool_mode, aligned)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance)


def test_roi_align_substitute_gradient_matches_mmcv_and_differentiates_twice():
    from mmcv.ops import roi_align
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(5, 6, 7, 0.5, g, torch.float64)
    weight = torch.randn(5, 2, 3, 3, generator=g, dtype=torch.float64)
    expected, = torch.autograd.grad((roi_align(feats, rois, 3, 0.5, 0, 'avg', True) * weight)
                                    .sum(), feats)
    actual, = torch.autograd.grad((roi_align_pytorch(feats, rois, 3, 0.5) * weight).sum(), feats)
    torch.testing.assert_close(actual, expected)
    small = feats[:, :1, :4, :5].detach().requires_grad_()
    assert gradgradcheck(lambda x: roi_align_pytorch(x, rois[:3], 2, 0.5, 0, 'avg', True),
                         (small, ))
    assert gradgradcheck(lambda x: roi_align_pytorch(x, rois[:3], 2, 0.5, 2, 'max', False),
                         (small, ))


@pytest.mark.parametrize('mode', ['bilinear', 'nearest'])
@pytest.mark.parametrize('padding_mode', ['zeros', 'border'])
@pytest.mark.parametrize('align_corners', [True, False])
def test_grid_sample_substitute_matches_torch(mode, padding_mode, align_corners):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    grid = torch.rand(2, 4, 7, 2, generator=g, dtype=torch.float64) * 2.6 - 1.3  # some outside
    expected = F.grid_sample(feats, grid, mode, padding_mode, align_corners)
    torch.testing.assert_close(grid_sample_pytorch(feats, grid, mode, padding_mode,
                                                   align_corners), expected)


def test_grid_sample_substitute_gradients_match_torch_and_differentiate_twice():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(1, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    grid = (torch.rand(1, 3, 3, 2, generator=g, dtype=torch.float64) * 2.4 - 1.2).requires_grad_()
    weight = torch.randn(1, 2, 3, 3, generator=g, dtype=torch.float64)
    for padding_mode in ('zeros', 'border'):
        expected = torch.autograd.grad(
            (F.grid_sample(feats, grid, padding_mode=padding_mode, align_corners=False) *
             weight).sum(), (feats, grid))
        actual = torch.autograd.grad(
            (grid_sample_pytorch(feats, grid, padding_mode=padding_mode) * weight).sum(),
            (feats, grid))
        for a, e in zip(actual, expected):
            torch.testing.assert_close(a, e)
        assert gradgradcheck(lambda x, y: grid_sample_pytorch(x, y, padding_mode=padding_mode),
                             (feats, grid))


def test_hardsigmoid_and_hardswish_substitutes_match_torch_and_differentiate_twice():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    x = x[(x.abs() - 3).abs() > 1e-6]  # not on the kinks, where one-sided slopes differ
    torch.testing.assert_close(hardsigmoid(x), F.hardsigmoid(x))
    torch.testing.assert_close(hardswish(x), F.hardswish(x))
    x.requires_grad_()
    for ours, theirs in ((hardsigmoid, F.hardsigmoid), (hardswish, F.hardswish)):
        torch.testing.assert_close(torch.autograd.grad(ours(x).sum(), x)[0],
                                   torch.autograd.grad(theirs(x).sum(), x)[0])
        assert gradgradcheck(ours, (x, ))
    with pytest.raises(RuntimeError, match='hardsigmoid_backward is not implemented'):
        grad, = torch.autograd.grad(F.hardsigmoid(x * 2).sum(), x, create_graph=True)
        torch.autograd.grad(grad.sum(), x)


def test_attention_runs_on_the_math_backend_inside_the_lookahead_only():
    """mmpretrain's attention keeps a reference to F.scaled_dot_product_attention taken
    at construction; inside the substitutes it still runs twice differentiably (the
    fused CPU kernel's backward has no derivative), with the same forward."""
    from mmpretrain.models.utils.attention import MultiheadAttention
    torch.manual_seed(0)
    attention = MultiheadAttention(embed_dims=8, num_heads=2)
    x = torch.randn(2, 5, 8, requires_grad=True)
    expected = attention(x)
    with pytest.raises(RuntimeError, match='is not implemented'):
        grad, = torch.autograd.grad(attention(x).pow(2).sum(), x, create_graph=True)
        torch.autograd.grad(grad.sum(), x)
    with twice_differentiable_ops() as used:
        out = attention(x)
        grad, = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
        second, = torch.autograd.grad(grad.sum(), x)
    torch.testing.assert_close(out, expected)
    assert torch.isfinite(second).all()
    assert any('scaled_dot_product_attention' in op for op in used)
    assert torch.equal(attention(x), expected)  # the live op is back outside


def one_hot(labels, num_classes):
    return F.one_hot(labels, num_classes + 1)[:, :num_classes]


@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
@pytest.mark.parametrize('weighted', [False, True])
def test_focal_loss_substitute_matches_mmdet_on_labels(reduction, weighted):
    """mmdet's CUDA-path ``sigmoid_focal_loss`` (labels, weight and avg_factor handled
    by mmdet around mmcv's op) with the substitute in mmcv's place equals mmdet's
    pure-PyTorch focal loss on one-hot targets."""
    from mmdet.models.losses import focal_loss
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(12, 5, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(6, (12, ), generator=g)  # 5: background
    weight = torch.rand(12, generator=g, dtype=torch.float64) if weighted else None
    expected = focal_loss.py_sigmoid_focal_loss(pred, one_hot(labels, 5), weight, 2.0, 0.25,
                                                reduction, avg_factor=None)
    with twice_differentiable_ops() as used:
        actual = focal_loss.sigmoid_focal_loss(pred, labels, weight, 2.0, 0.25, reduction,
                                               avg_factor=None)
        avg = focal_loss.sigmoid_focal_loss(pred, labels, weight, 2.0, 0.25, 'mean',
                                            avg_factor=7.0)
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(avg, focal_loss.py_sigmoid_focal_loss(
        pred, one_hot(labels, 5), weight, 2.0, 0.25, 'mean', avg_factor=7.0))
    assert list(used) == ['mmcv sigmoid_focal_loss (mmdet FocalLoss on CUDA)']
    assert focal_loss._sigmoid_focal_loss is not sigmoid_focal_loss_pytorch  # restored
    # mmcv's own reductions and per-class weight.
    class_weight = torch.rand(5, generator=g, dtype=torch.float64)
    per_element = focal_loss.py_sigmoid_focal_loss(pred, one_hot(labels.clamp(max=4), 5),
                                                   reduction='none')
    torch.testing.assert_close(
        sigmoid_focal_loss_pytorch(pred, labels.clamp(max=4), 2.0, 0.25, class_weight, 'mean'),
        (per_element * class_weight[labels.clamp(max=4), None]).sum() / 12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='mmcv focal loss is CUDA only')
def test_focal_loss_substitute_matches_mmcv_cuda_op():
    from mmcv.ops import sigmoid_focal_loss
    g = torch.Generator().manual_seed(0)
    pred = (torch.randn(64, 7, generator=g) * 3).cuda()
    labels = torch.randint(8, (64, ), generator=g).cuda()
    for reduction in ('none', 'mean', 'sum'):
        torch.testing.assert_close(
            sigmoid_focal_loss_pytorch(pred, labels, 2.0, 0.25, None, reduction),
            sigmoid_focal_loss(pred, labels, 2.0, 0.25, None, reduction), rtol=1e-4, atol=1e-5)


def test_multi_scale_deformable_attention_takes_the_pytorch_path_in_the_look_ahead():
    from mmcv.ops import multi_scale_deform_attn as msda
    original = msda.MultiScaleDeformableAttnFunction
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[4, 5], [2, 3]])
    value = torch.randn(1, 26, 2, 4, generator=g)
    locations = torch.rand(1, 3, 2, 2, 2, 2, generator=g)
    weights = torch.rand(1, 3, 2, 2, 2, generator=g)
    with twice_differentiable_ops() as used:
        out = msda.MultiScaleDeformableAttnFunction.apply(
            value, shapes, torch.tensor([0, 20]), locations, weights, 64)
    torch.testing.assert_close(out, msda.multi_scale_deformable_attn_pytorch(
        value, shapes, locations, weights))
    assert 'mmcv MultiScaleDeformableAttention (CUDA)' in used
    assert msda.MultiScaleDeformableAttnFunction is original


# ------------------------------------------------------------------ detection
class OnceDifferentiableSquare(torch.autograd.Function):
    """``x ** 2`` with a once-differentiable backward, as mmcv's compiled ops have."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        x, = ctx.saved_tensors
        return 2 * x * grad_output


def test_audit_names_once_differentiable_functions_and_missing_derivatives():
    x = torch.randn(4, requires_grad=True)
    loss = OnceDifferentiableSquare.apply(x).sum()  # constant incoming gradient: silent
    grads = torch.autograd.grad(loss, x, create_graph=True)
    assert grads[0].grad_fn is None  # the curvature dropped out without an error
    found = SecondOrderAudit().find([loss, *grads])
    assert found == [f'{__name__}.OnceDifferentiableSquare (its backward is @once_differentiable)']
    loss = (torch.nn.Hardsigmoid()(x * 2) * x).sum()
    grads = torch.autograd.grad(loss, x, create_graph=True)
    assert SecondOrderAudit().find([loss, *grads]) == [
        'aten::hardsigmoid_backward (torch implements no derivative of it)']
    with twice_differentiable_ops() as used:
        loss = (torch.nn.Hardsigmoid()(x * 2) * x).sum()
        grads = torch.autograd.grad(loss, x, create_graph=True)
    assert SecondOrderAudit().find([loss, *grads]) == []
    assert list(used) == ['torch hardsigmoid']


def test_audit_takes_task_loss_steps_first_order_and_refuses_distillation_steps():
    x = torch.randn(4, requires_grad=True)
    audit = SecondOrderAudit()
    loss = OnceDifferentiableSquare.apply(x * 3).sum()
    grads = audit.check('task-loss', 0, 1, loss, torch.autograd.grad(loss, x, create_graph=True))
    assert grads[0].grad_fn is None and not grads[0].requires_grad
    assert list(audit.first_order) == ['task-loss step 1 of 1 (inner_ce_steps)']
    loss = OnceDifferentiableSquare.apply(x * 2).sum()
    with pytest.raises(SecondOrderError, match=r'distillation step 2 of 2 \(inner_kd_steps\).*'
                       r'OnceDifferentiableSquare.*Fix: replace the op'):
        audit.check('distillation', 1, 2, loss, torch.autograd.grad(loss, x, create_graph=True))


def test_look_ahead_call_leaves_shared_parameters_live():
    """A conv shared by several parents (as RTMDet's head shares its convs across
    levels) is substituted under every name, and the live Parameter is back after the
    call (torch.func.functional_call alone leaves the substitute in place)."""
    from mmkd_ext.engine.optimizers.lookahead import call

    class Branches(torch.nn.ModuleList):
        def forward(self, x):
            return sum(branch(x) for branch in self)

    shared = torch.nn.Conv2d(1, 1, 1, bias=False)
    model = Branches([torch.nn.Sequential(shared) for _ in range(3)])
    live = shared.weight
    tensors = {n: p.detach() * 2 for n, p in model.named_parameters()}
    assert list(tensors) == ['0.0.weight']
    out = call(model, tensors, torch.ones(1, 1, 1, 1))
    assert out.item() == pytest.approx(3 * 2 * live.item())
    assert all(branch[0].weight is live for branch in model)
    assert isinstance(live, torch.nn.Parameter)


# ------------------------------------------- the CUDA focal-loss path, on CPU
class EmulatedMmcvFocalLoss(torch.autograd.Function):
    """mmcv's ``sigmoid_focal_loss`` as mmdet calls it on CUDA (mmcv's arguments,
    ``reduction='none'``): values without a graph, as a kernel gives them, and a
    correct but once-differentiable backward. ``pure`` is mmdet's
    ``py_sigmoid_focal_loss`` (set by the fixture)."""
    pure = None

    @staticmethod
    def forward(ctx, input, target, gamma, alpha, weight, reduction):
        assert weight is None and reduction == 'none'  # as mmdet's FocalLoss calls it
        ctx.save_for_backward(input, target)
        ctx.gamma, ctx.alpha = gamma, alpha
        return EmulatedMmcvFocalLoss.pure(input, one_hot(target, input.size(1)), None, gamma,
                                        alpha, 'none')

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        input, target = ctx.saved_tensors
        with torch.enable_grad():
            x = input.detach().requires_grad_()
            loss = EmulatedMmcvFocalLoss.pure(x, one_hot(target, x.size(1)), None, ctx.gamma,
                                            ctx.alpha, 'none')
            grad, = torch.autograd.grad(loss, x, grad_output)
        return grad, None, None, None, None, None


@pytest.fixture
def cuda_focal_path(monkeypatch):
    """mmdet's FocalLoss as on CUDA: mmcv's op (emulated) at the name mmdet calls
    (``_sigmoid_focal_loss``), reached through mmdet's CUDA-path ``sigmoid_focal_loss``.
    On CPU FocalLoss one-hots the labels for ``py_sigmoid_focal_loss``; that call is
    routed back to the labels and the CUDA path."""
    from mmdet.models.losses import focal_loss
    py_focal = focal_loss.py_sigmoid_focal_loss

    def cuda_route(pred, target, weight=None, gamma=2.0, alpha=0.25, reduction='mean',
                   avg_factor=None):
        labels = torch.where(target.any(1), target.argmax(1), target.size(1))
        return focal_loss.sigmoid_focal_loss(pred, labels, weight, gamma, alpha, reduction,
                                             avg_factor)

    monkeypatch.setattr(focal_loss, '_sigmoid_focal_loss', EmulatedMmcvFocalLoss.apply)
    monkeypatch.setattr(focal_loss, 'py_sigmoid_focal_loss', cuda_route)
    monkeypatch.setattr(EmulatedMmcvFocalLoss, 'pure', staticmethod(py_focal))
    return focal_loss


def det_mmkd(det_teachers):
    """A tiny RetinaNet MMKD distiller in float64 whose SGD optimizer took one step."""
    from mmkd_ext.engine.optimizers.lookahead import sum_losses
    from tiny_models import det_batch, det_distiller
    model = det_distiller(det_teachers, weighting=dict(type='MetaWeightNet', batch_size=2))
    params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    inputs, samples = det_batch(model, seed=1)
    sum_losses(model(inputs, samples, mode='loss')).backward()
    optimizer.step()
    optimizer.zero_grad()
    model.to(torch.float64)
    for state in optimizer.state.values():
        state['momentum_buffer'] = state['momentum_buffer'].double()
    inputs, samples = det_batch(model, seed=2)
    return model, optimizer, inputs.double(), samples


def test_cuda_focal_loss_path_gives_the_finite_difference_hypergradient(
        det_teachers, cuda_focal_path, monkeypatch):
    """On CUDA mmdet's FocalLoss calls mmcv's once-differentiable op: in the look-ahead
    the substitute restores the focal loss's curvature, so the hypergradient matches
    finite differences; without the substitute the task-loss step is found and taken
    first-order (logged), and the hypergradient differs."""
    from mmkd_ext.engine.hooks import MetaWeightHook
    model, optimizer, inputs, samples = det_mmkd(det_teachers)
    from mmkd_ext.engine.optimizers.lookahead import sum_losses
    loss = sum_losses(model.student(inputs, samples, mode='loss'))
    assert any('EmulatedMmcvFocalLoss' in op  # the emulated path is taken
               for op in SecondOrderAudit().find([loss]))
    param = model.weighting.logit_net[0].weight

    def hypergradient():
        hook = MetaWeightHook(inner_kd_steps=1, inner_ce_steps=1)
        param.grad = None
        hook.hypergradient(model, optimizer, inputs, samples)
        return hook, param.grad.clone()

    hook, grad = hypergradient()
    assert list(hook.second_order.substituted) == [
        'mmcv sigmoid_focal_loss (mmdet FocalLoss on CUDA)']
    assert hook.second_order.first_order == {}

    indices = [torch.unravel_index(torch.tensor(i), param.shape)
               for i in torch.topk(grad.abs().flatten(), 2).indices.tolist()]
    numeric = []
    for index in indices:
        # A seeded point, in float64: at this step the difference quotient has settled
        # (to 1e-6, relative) with no ReLU or L1 switch crossed; smaller steps lose
        # digits to rounding.
        eps = 1e-5
        values = []
        for shift in (eps, -2 * eps):
            with torch.no_grad():
                param[index] += shift
            values.append(hook.meta_objective(model, optimizer, inputs, samples)[0].item())
        with torch.no_grad():
            param[index] += eps
        numeric.append((values[0] - values[1]) / (2 * eps))
        assert grad[index].item() == pytest.approx(numeric[-1], rel=1e-4, abs=1e-9)

    monkeypatch.setattr(second_order, 'SUBSTITUTES',
                        tuple(s for s in SUBSTITUTES if 'focal' not in s.op))
    hook, first_order = hypergradient()
    assert hook.second_order.substituted == {}
    [(step, ops)] = hook.second_order.first_order.items()
    assert step == 'task-loss step 1 of 1 (inner_ce_steps)'
    assert ops == [f'{__name__}.EmulatedMmcvFocalLoss (its backward is @once_differentiable)']
    gaps = [abs(first_order[i].item() - n) for i, n in zip(indices, numeric)]
    assert max(gaps) > 1e-2 * max(abs(n) for n in numeric)


# ------------------------------------------------------------------ the probe
def tiny_mmkd(two_teachers):
    from conftest import make_distiller
    model = make_distiller(two_teachers, weighting=dict(type='MetaWeightNet', batch_size=4))
    params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    return model, torch.optim.SGD(params, lr=0.1, momentum=0.9)


def raw_batch(seed=0, batch_size=4):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 256, (3, 32, 32), generator=g).to(torch.uint8)
                        for _ in range(batch_size)],
                data_samples=[DataSample().set_gt_label(i) for i in range(batch_size)])


def test_probe_runs_the_look_ahead_and_changes_no_training_state(two_teachers):
    import random

    import numpy as np

    from mmkd_ext.engine.hooks import MetaWeightHook
    model, optimizer = tiny_mmkd(two_teachers)
    hook = MetaWeightHook(seed=3)
    hook.buffer = torch.arange(5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state(),
           hook.generator.get_state())
    hook.probe(model, optimizer, raw_batch())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert optimizer.state_dict()['state'] == {}
    assert all(p.grad is None for p in model.parameters())
    assert random.getstate() == rng[0] and (np.random.get_state()[1] == rng[1]).all()
    assert torch.equal(torch.get_rng_state(), rng[2])
    assert torch.equal(hook.generator.get_state(), rng[3])
    assert hook.buffer.tolist() == list(range(5))
    assert hook.second_order.first_order == {}


def test_probe_leaves_the_batch_for_the_training_steps_own_batch_augmentation(two_teachers):
    """mmpretrain's Mixup writes mixed labels into the data samples it preprocesses:
    the probe (and a quiz batch taken from the current batch) works on a copy, so the
    training step mixes the first batch's labels once, as without MMKD."""
    from mmkd_ext.engine.hooks import MetaWeightHook
    model, optimizer = tiny_mmkd(two_teachers)
    from mmpretrain.models.utils.batch_augments import RandomBatchAugment
    preprocessor = model.data_preprocessor  # as built with batch_augments=dict(...)
    preprocessor.batch_augments = RandomBatchAugment(dict(type='Mixup', alpha=0.8))
    preprocessor.to_onehot = True
    batch = raw_batch()
    hook = MetaWeightHook()
    hook.probe(model, optimizer, batch)
    assert all('gt_score' not in sample for sample in batch['data_samples'])
    hook._quiz_batch(model, batch)  # the buffer is empty: the current batch
    assert all('gt_score' not in sample for sample in batch['data_samples'])


def test_probe_refuses_a_distillation_step_without_second_derivative(two_teachers):
    """An op without a second derivative in the student's features (what the
    distillation steps differentiate through) is refused by the probe, before
    training, naming the op and the fix."""
    from mmkd_ext.engine.hooks import MetaWeightHook
    model, optimizer = tiny_mmkd(two_teachers)
    model.student.backbone.register_forward_hook(
        lambda module, args, out: tuple(OnceDifferentiableSquare.apply(x) for x in out))
    with pytest.raises(SecondOrderError, match=r'distillation step 1 of 2 \(inner_kd_steps\).*'
                       r'OnceDifferentiableSquare.*Fix:.*finite_difference'):
        MetaWeightHook().probe(model, optimizer, raw_batch())
    # The finite-difference hypergradient takes no second derivative: it runs.
    hook = MetaWeightHook(hypergradient='finite_difference')
    hook.probe(model, optimizer, raw_batch())
    batch = hook._preprocess(model, raw_batch())
    hook.hypergradient(model, optimizer, batch['inputs'], batch['data_samples'])
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
               for p in model.weighting.parameters())


# ----------------------------------------------- zoo detectors through the Runner
@pytest.mark.slow
@pytest.mark.parametrize('family_name,substituted', [
    ('RTMDet', 'torch hardsigmoid'),  # CSPNeXt's channel attention
    ('Faster R-CNN', 'mmcv RoIAlign'),  # the RoI head, in the task-loss step
])
def test_zoo_detector_runs_mmkd_with_its_ops_substituted(family_name, substituted, coco_root,
                                                         tmp_path):
    """RTMDet-tiny and Faster R-CNN from mmdet's zoo configs (shrunk for a CPU) train
    with MMKD through the Runner, a meta step every iteration: the probe and the meta
    steps replace what has no second derivative, and no step goes first-order."""
    from mmengine.runner import Runner

    from benchmarks.families import FAMILIES, family_kd_config, save_family_teachers
    from conftest import DEMO_TASKS
    family, task = FAMILIES[family_name], DEMO_TASKS['detection']
    (tmp_path / 'teachers').mkdir()
    checkpoints = save_family_teachers(family, str(tmp_path / 'teachers'))
    cfg = family_kd_config(family, 'mmkd', task.kd_config, task.data_options(coco_root),
                           checkpoints, str(tmp_path / 'run'), iters=2)
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.weighting.state_dict().items()}
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'MetaWeightHook')
    assert substituted in hook.second_order.substituted
    assert hook.second_order.first_order == {}
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar('train/meta_loss').current()))
    after = runner.model.weighting.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
