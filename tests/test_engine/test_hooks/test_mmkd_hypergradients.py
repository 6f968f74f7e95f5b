"""MMKD's cheaper hypergradients and its reuse of the teachers' outputs."""
import copy
import uuid

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmkd_ext.engine.hooks import MetaWeightHook
from mmkd_ext.engine.hooks.quiz_cache import QuizCache, split_rows, stack_rows
from mmkd_ext.engine.optimizers.hypergradient import meta_objective
from conftest import load_kd_config, make_batch, make_distiller

OPTIMIZERS = {
    'sgd': lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4,
                                          nesterov=True),
    'adamw': lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.05),
}


def distiller_with_history(teachers, optimizer_name, dtype=torch.float64):
    """A tiny MMKD distiller whose optimizer has taken one step (a momentum/moment
    history), in ``dtype``, and a quiz batch."""
    torch.manual_seed(0)
    model = make_distiller(teachers, weighting=dict(type='MetaWeightNet', batch_size=4))
    params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    optimizer = OPTIMIZERS[optimizer_name](params)
    inputs, samples = make_batch(model, batch_size=4)
    sum(v for k, v in model(inputs, samples, mode='loss').items() if 'loss' in k).backward()
    optimizer.step()
    optimizer.zero_grad()
    model.to(dtype)
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and value.is_floating_point():
                state[key] = value.to(dtype)
    inputs, samples = make_batch(model, batch_size=4, seed=4)
    return model, optimizer, inputs.to(dtype), samples


def hypergradient(model, optimizer, inputs, samples, mode, kd_steps, task_steps, **kwargs):
    with model.weighting.learning():
        nets = [p for p in model.weighting.parameters() if p.requires_grad]
        _, surrogate = meta_objective(mode, model, optimizer, inputs, samples, kd_steps,
                                      task_steps, **kwargs)
        grads = (torch.autograd.grad(surrogate, nets, allow_unused=True)
                 if surrogate.requires_grad else [None] * len(nets))
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten()
                      for p, g in zip(nets, grads)])


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


@pytest.mark.parametrize('optimizer_name', sorted(OPTIMIZERS))
def test_finite_difference_is_exact_for_one_distillation_step(two_teachers, optimizer_name):
    """With one distillation step and no task-loss step nothing is dropped: only the
    mixed derivative is a finite difference, which converges to the exact value."""
    model, optimizer, inputs, samples = distiller_with_history(two_teachers, optimizer_name)
    exact = hypergradient(model, optimizer, inputs, samples, 'exact', 1, 0)
    assert exact.norm() > 0
    fine = hypergradient(model, optimizer, inputs, samples, 'finite_difference', 1, 0,
                         epsilon=1e-6)
    assert torch.allclose(fine, exact, rtol=1e-5, atol=1e-7 * exact.abs().max())
    default = hypergradient(model, optimizer, inputs, samples, 'finite_difference', 1, 0)
    assert cosine(default, exact) > 0.999  # the default step, on a tiny ReLU net


def test_finite_difference_is_exact_with_a_feature_teacher(two_teachers, tmp_path):
    """A detector (a model of another library) as a feature teacher of the classifier
    student, first in the pool: its term has a fixed weight, and the task teachers'
    share of the feature term scales the finite difference as it scales the exact
    hypergradient."""
    from conftest import save_checkpoint
    from tiny_models import tiny_retinanet
    detector = tiny_retinanet(8)
    teachers = [dict(name='det', config=detector,
                     checkpoint=save_checkpoint(detector, tmp_path / 'det.pth', 3)),
                *two_teachers]
    model, optimizer, inputs, samples = distiller_with_history(teachers, 'sgd')
    assert model.teacher_pool.feature_only == [True, False, False]
    exact = hypergradient(model, optimizer, inputs, samples, 'exact', 1, 0)
    fine = hypergradient(model, optimizer, inputs, samples, 'finite_difference', 1, 0,
                         epsilon=1e-6)
    assert exact.norm() > 0
    assert torch.allclose(fine, exact, rtol=1e-5, atol=1e-7 * exact.abs().max())


@pytest.mark.parametrize('optimizer_name', sorted(OPTIMIZERS))
def test_first_order_task_mode_drops_the_task_steps_curvature_only(two_teachers,
                                                                    optimizer_name):
    """With one distillation step, dropping the task-loss step's curvature is all that
    both cheap modes drop, by two independent computations (double backward with the
    task gradient detached; first-order steps carried back through the update rule)."""
    model, optimizer, inputs, samples = distiller_with_history(two_teachers, optimizer_name)
    first_order = hypergradient(model, optimizer, inputs, samples, 'first_order_task', 1, 1)
    finite = hypergradient(model, optimizer, inputs, samples, 'finite_difference', 1, 1,
                           epsilon=1e-6)
    assert torch.allclose(first_order, finite, rtol=1e-5,
                          atol=1e-7 * first_order.abs().max())
    exact = hypergradient(model, optimizer, inputs, samples, 'exact', 1, 1)
    assert cosine(first_order, exact) < 0.99  # the curvature it drops is not nothing


@pytest.mark.parametrize('optimizer_name', sorted(OPTIMIZERS))
def test_finite_difference_hvp_is_exact_through_every_step(two_teachers, optimizer_name):
    """Two distillation steps and a task-loss step (the default look-ahead): with the
    Hessian-vector products kept, the finite differences give the exact
    hypergradient; without them ('finite_difference') they do not."""
    model, optimizer, inputs, samples = distiller_with_history(two_teachers, optimizer_name)
    exact = hypergradient(model, optimizer, inputs, samples, 'exact', 2, 1)
    assert exact.norm() > 0
    hvp = hypergradient(model, optimizer, inputs, samples, 'finite_difference_hvp', 2, 1,
                        epsilon=1e-7)  # small: a ReLU net's gradient jumps at its kinks
    assert torch.allclose(hvp, exact, rtol=1e-5, atol=1e-5 * exact.abs().max())
    dropped = hypergradient(model, optimizer, inputs, samples, 'finite_difference', 2, 1,
                            epsilon=1e-6)
    assert cosine(dropped, exact) < 0.99  # the curvature it keeps is not nothing


def test_finite_difference_hvp_with_a_feature_teacher_and_task_steps_only_at_the_end(
        two_teachers, tmp_path):
    """A feature teacher first in the pool (its term fixed, its share scaling the
    rest), one distillation step then two task-loss steps: still the exact
    hypergradient."""
    from conftest import save_checkpoint
    from tiny_models import tiny_retinanet
    detector = tiny_retinanet(8)
    teachers = [dict(name='det', config=detector,
                     checkpoint=save_checkpoint(detector, tmp_path / 'det.pth', 3)),
                *two_teachers]
    model, optimizer, inputs, samples = distiller_with_history(teachers, 'adamw')
    exact = hypergradient(model, optimizer, inputs, samples, 'exact', 1, 2)
    hvp = hypergradient(model, optimizer, inputs, samples, 'finite_difference_hvp', 1, 2,
                        epsilon=1e-7)
    assert exact.norm() > 0
    assert torch.allclose(hvp, exact, rtol=1e-5, atol=1e-5 * exact.abs().max())


def test_finite_difference_hvp_replays_each_steps_random_numbers(two_teachers):
    """A student with stochastic depth (random draws in every forward) and a parameter
    its optimizer does not step: each difference replays its step's draws, and the
    parameter stays where it is, as in the exact hypergradient."""
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    from conftest import tiny_classifier
    student = tiny_classifier(4)
    student['backbone']['drop_path_rate'] = 0.3
    torch.manual_seed(0)
    model = MultiTeacherDistiller(student=student, teachers=two_teachers,
                                  weighting=dict(type='MetaWeightNet', batch_size=4),
                                  feature_kd=dict(weight=2.0)).double()
    frozen = 'student.head.fc.bias'
    params = [p for n, p in model.named_parameters()
              if not n.startswith('weighting.') and n != frozen]
    optimizer = OPTIMIZERS['sgd'](params)
    inputs, samples = make_batch(model, batch_size=4, seed=4)
    inputs = inputs.double()

    def seeded(mode, **kwargs):
        torch.manual_seed(7)  # the same draws for both modes' forwards
        return hypergradient(model, optimizer, inputs, samples, mode, 2, 1, **kwargs)
    exact = seeded('exact')
    assert exact.norm() > 0
    assert not torch.equal(exact, hypergradient(model, optimizer, inputs, samples, 'exact',
                                                2, 1))  # the draws matter
    hvp = seeded('finite_difference_hvp', epsilon=1e-7)
    assert torch.allclose(hvp, exact, rtol=1e-5, atol=1e-5 * exact.abs().max())


def test_without_task_steps_first_order_task_is_exact(two_teachers):
    model, optimizer, inputs, samples = distiller_with_history(two_teachers, 'sgd')
    exact = hypergradient(model, optimizer, inputs, samples, 'exact', 2, 0)
    first_order = hypergradient(model, optimizer, inputs, samples, 'first_order_task', 2, 0)
    assert torch.equal(exact, first_order)


@pytest.mark.parametrize('mode', ['first_order_task', 'finite_difference',
                                  'finite_difference_hvp'])
def test_cheap_modes_leave_the_student_bn_stats_and_optimizer_unchanged(two_teachers, mode):
    model, optimizer, inputs, samples = distiller_with_history(two_teachers, 'sgd',
                                                               torch.float32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = copy.deepcopy(optimizer.state_dict())
    MetaWeightHook(hypergradient=mode).hypergradient(model, optimizer, inputs, samples)
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.weighting.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key
    for pid, entry in opt_state['state'].items():
        assert torch.equal(entry['momentum_buffer'],
                           optimizer.state_dict()['state'][pid]['momentum_buffer'])


@pytest.mark.parametrize('mode', ['exact', 'first_order_task', 'finite_difference',
                                  'finite_difference_hvp'])
def test_without_distillation_steps_every_mode_gives_no_hypergradient(two_teachers, mode):
    model, optimizer, inputs, samples = distiller_with_history(two_teachers, 'sgd',
                                                               torch.float32)
    grad = hypergradient(model, optimizer, inputs, samples, mode, 0, 1)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_the_hooks_finite_difference_step_is_the_objectives(two_teachers):
    """``finite_difference_epsilon`` is the step the hook's hypergradient takes: at
    1e-6 it is the exact one-step hypergradient (float64), at 0.5 it is not."""
    model, optimizer, inputs, samples = distiller_with_history(two_teachers, 'sgd')
    exact = hypergradient(model, optimizer, inputs, samples, 'exact', 1, 0)

    def hooks(epsilon):
        hook = MetaWeightHook(hypergradient='finite_difference', inner_kd_steps=1,
                              inner_ce_steps=0, finite_difference_epsilon=epsilon)
        for p in model.weighting.parameters():
            p.grad = None
        hook.hypergradient(model, optimizer, inputs, samples)
        return torch.cat([p.grad.flatten() for p in model.weighting.parameters()])
    assert torch.allclose(hooks(1e-6), exact, rtol=1e-5, atol=1e-7 * exact.abs().max())
    assert not torch.allclose(hooks(0.5), exact, rtol=1e-3, atol=1e-5 * exact.abs().max())


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="hypergradient='second_order'.*finite_difference"):
        MetaWeightHook(hypergradient='second_order')
    with pytest.raises(ValueError, match='quiz_cache_mb must be >= 0'):
        MetaWeightHook(quiz_cache_mb=-1)
    with pytest.raises(ValueError, match='finite_difference_epsilon must be > 0'):
        MetaWeightHook(finite_difference_epsilon=0)


# ------------------------------------------------------------------ the quiz cache
def test_rows_split_and_stack_back():
    heads = (torch.arange(12.).view(3, 4), [torch.randn(3, 2, 5), None])
    rows = split_rows(heads, 3)
    assert len(rows) == 3 and torch.equal(rows[1][0], heads[0][1])
    assert rows[2][1][0].untyped_storage().nbytes() == 2 * 5 * 4  # copies, not views
    stacked = stack_rows(rows)
    assert torch.equal(stacked[0], heads[0]) and torch.equal(stacked[1][0], heads[1][0])
    assert stacked[1][1] is None
    with pytest.raises(ValueError, match='not batch-first'):
        split_rows([torch.zeros(6, 3, 2)], 3)  # e.g. [layers, B, ...]


def test_cache_keeps_samples_under_its_cap_and_drops_those_that_left():
    inputs = torch.zeros(4, 3, 8, 8)  # 768 bytes a sample
    outputs = (torch.zeros(4, 10), [[torch.zeros(4, 2, 2, 2)]])  # 40 + 32 bytes
    cache = QuizCache(max_bytes=3 * (768 + 72))
    assert cache.put_batch([10, 11, 12, 13], [0, 1, 2, 3], inputs, list('abcd'), outputs) == 3
    assert 13 not in cache and cache.bytes == 3 * 840
    assert cache.batch([10, 13]) is None  # one missing: reloaded as a whole
    got_inputs, got_samples, got_outputs = cache.batch([12, 10])
    assert got_inputs.shape == (2, 3, 8, 8) and got_samples == ['c', 'a']
    assert got_outputs[0].shape == (2, 10) and got_outputs[1][0][0].shape == (2, 2, 2, 2)
    cache.keep_only([12])
    assert len(cache) == 1 and cache.bytes == 840
    assert QuizCache(0).put_batch([1], [0], inputs, list('abcd'), outputs) == 0


def test_kept_data_samples_own_their_tensors_and_count_under_the_cap():
    from mmpretrain.structures import DataSample
    scores = torch.rand(4, 10)  # e.g. Mixup's mixed labels: each sample holds a row view
    samples = [DataSample().set_gt_score(scores[i]) for i in range(4)]
    cache = QuizCache(max_bytes=10**6)
    cache.put_batch([7], [2], torch.zeros(4, 3, 2, 2), samples, (torch.zeros(4, 10), ))
    kept = cache.entries[7][1]
    assert torch.equal(kept.gt_score, scores[2])
    assert kept.gt_score.untyped_storage().nbytes() == 10 * 4  # not the batch's 4 x 10
    assert cache.bytes == 3 * 2 * 2 * 4 + 10 * 4 + 10 * 4


def test_a_quiz_of_the_current_batch_is_the_steps_own_inputs_and_teacher_outputs(
        two_teachers):
    from mmkd_ext.structures import KDStep
    model = make_distiller(two_teachers, weighting=dict(type='MetaWeightNet', batch_size=4))
    model.retain_teacher_outputs = True
    model.train()
    inputs, samples = make_batch(model, batch_size=4)
    model(inputs, samples, mode='loss')
    step = model.last_step
    assert isinstance(step, KDStep) and step.inputs is not None
    heads, maps = step.teacher_outputs
    assert len(heads) == len(maps) == 2 and heads[0].shape == (4, 10)
    hook = MetaWeightHook(buffer_size=8, quiz_batch_size=4)  # the buffer is not full
    data, known = hook._quiz_batch(model, dict(inputs=[], data_samples=samples))
    assert data['inputs'] is step.inputs and known == (step.inputs, step.teacher_outputs)
    assert data['data_samples'] is not step.batch.data_samples  # a copy
    model.retain_teacher_outputs = False
    model(inputs, samples, mode='loss')
    assert model.last_step.inputs is None and model.last_step.teacher_outputs is None


class TeacherCalls:
    """Counts each teacher's forwards."""

    def __init__(self, model):
        self.count = 0
        for teacher in model.teachers:
            teacher.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.count += 1


class LastIteration(Hook):
    """Calls ``fn`` after the last training iteration's other hooks."""

    def __init__(self, fn):
        self.fn = fn

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == runner.max_iters:
            self.fn()


def mmkd_runner(shapes_root, teacher_dir, work_dir, max_iters, **hook):
    cfg = load_kd_config('mmkd', shapes_root, teacher_dir, max_iters=max_iters)
    cfg.merge_from_dict({
        'model.weighting.batch_size': 16,
        'custom_hooks': [dict(type='mmkd_ext.MetaWeightHook', interval=2, buffer_size=32,
                              quiz_batch_size=16, precise_bn_batches=0, **hook)],
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10**6,
                                         by_epoch=False, save_last=False),
    })
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'mmkd_{uuid.uuid4().hex[:8]}'
    cfg.randomness = dict(seed=0, deterministic=True)
    return Runner.from_cfg(cfg)


def test_meta_steps_run_no_teacher(shapes_root, teacher_dir, tmp_path):
    """Quiz batches come from the training steps: the teachers run once per training
    step (and once for the probe before the first one), and what is kept matches the
    teachers on the kept inputs."""
    runner = mmkd_runner(shapes_root, teacher_dir, tmp_path, max_iters=2)
    calls = TeacherCalls(runner.model)
    hook = next(h for h in runner.hooks if isinstance(h, MetaWeightHook))
    kept = []  # the cache after the last iteration, before any checkpoint
    runner.register_hook(LastIteration(lambda: kept.append(
        (hook.buffer.tolist(), dict(hook.cache.entries)))), priority='LOW')
    runner.train()
    teachers = len(runner.model.teachers)
    assert calls.count == teachers * (2 + 1)
    assert runner.message_hub.get_scalar('train/meta_quiz_reused').mean() == 1.0
    (buffer, entries), = kept
    assert set(entries) == set(buffer)
    hook.cache.entries = entries
    inputs, _, (heads, maps) = hook.cache.batch(buffer[:4])
    fresh_heads, fresh_maps = runner.model.teacher_pool.run(inputs, None)
    for kept, fresh in zip(heads + [m for ms in maps for m in ms],
                           fresh_heads + [m for ms in fresh_maps for m in ms]):
        assert torch.allclose(kept, fresh, atol=1e-5)
    hook.before_save_checkpoint(runner, {})  # a resumed run starts without them
    assert len(hook.cache) == 0


def test_too_small_a_quiz_cache_warns_reloads_and_runs_the_teachers(
        shapes_root, teacher_dir, tmp_path, capsys):
    runner = mmkd_runner(shapes_root, teacher_dir, tmp_path, max_iters=2, quiz_cache_mb=0.05)
    calls = TeacherCalls(runner.model)
    runner.train()
    assert 'of the buffer\'s 32 samples, and a quiz batch is reused only' in \
        capsys.readouterr().out
    teachers = len(runner.model.teachers)
    # The buffer (32) is full after 2 steps of 16: the meta step of iteration 2
    # reloads its quiz batch and runs the teachers on it.
    assert calls.count == teachers * (2 + 1 + 1)
    assert runner.message_hub.get_scalar('train/meta_quiz_reused').current() == 0.0
