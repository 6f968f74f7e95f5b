"""The distiller's parts and the interface the hooks use (DistillerContract)."""
from types import SimpleNamespace

import pytest
import torch

from mmkd_ext.models.distillers import DistillerContract
from mmkd_ext.structures import AgentTransition, TeacherWeights
from conftest import make_batch, make_distiller, tiny_classifier
from test_distiller import nan_teacher_entry


@pytest.fixture
def nan_teacher(tmp_path):
    return [nan_teacher_entry(tmp_path)]


def test_the_distiller_has_the_contract_and_hooks_refuse_other_models(two_teachers):
    from mmkd_ext.engine.hooks import MetaWeightHook, SkipNonFiniteStepsHook
    distiller = make_distiller(two_teachers)
    assert isinstance(distiller, DistillerContract)
    other = tiny_classifier(4)
    assert not isinstance(other, DistillerContract)
    runner = SimpleNamespace(model=other)
    with pytest.raises(TypeError, match='MetaWeightHook needs a MultiTeacherDistiller'):
        MetaWeightHook().distiller(runner)
    with pytest.raises(TypeError, match='SkipNonFiniteStepsHook needs a MultiTeacherDistiller'):
        SkipNonFiniteStepsHook().before_train(runner)


def test_non_finite_steps_are_skipped_only_after_the_explicit_policy_call(nan_teacher):
    distiller = make_distiller(nan_teacher)
    distiller.train()
    inputs, samples = make_batch(distiller)
    health = distiller.step_health
    assert health.policy == 'raise'
    with pytest.raises(FloatingPointError, match="logit KD of teacher 't0'"):
        distiller(inputs, samples, mode='loss')
    assert not health.skipped

    health.set_non_finite_policy('skip')
    losses = distiller(inputs, samples, mode='loss')
    assert set(losses) == {'loss_skipped'} and losses['loss_skipped'].item() == 0
    assert health.skipped
    assert any("teacher 't0' (t0.kd = nan)" in term for term in health.non_finite_terms)
    losses['loss_skipped'].backward()
    assert all(p.grad is None or not p.grad.any() for p in distiller.parameters())

    health.set_non_finite_policy('raise')
    with pytest.raises(FloatingPointError):
        distiller(inputs, samples, mode='loss')
    with pytest.raises(ValueError, match="one of \\('raise', 'skip'\\)"):
        health.set_non_finite_policy('ignore')
    unchecked = make_distiller(nan_teacher, check_finite=False)
    with pytest.raises(ValueError, match='check_finite=True'):
        unchecked.step_health.set_non_finite_policy('skip')


def test_lookahead_is_an_explicit_state_that_reuses_teacher_outputs(two_teachers):
    distiller = make_distiller(two_teachers)
    distiller.train()
    inputs, samples = make_batch(distiller)
    distiller(inputs, samples, mode='loss')
    real_step = distiller.last_step
    calls = []
    distiller.teachers[0].register_forward_hook(lambda *a: calls.append(1))
    assert not distiller.in_lookahead
    with distiller.lookahead():
        assert distiller.in_lookahead
        with distiller.lookahead():  # nested: still inside
            distiller(inputs, samples, mode='loss')
        assert distiller.in_lookahead
        distiller(inputs, samples, mode='distill')
    assert not distiller.in_lookahead
    assert len(calls) == 1  # the teachers ran once for the batch
    assert distiller.last_step is real_step  # look-ahead passes leave it alone
    distiller(inputs, samples, mode='loss')
    assert len(calls) == 2 and distiller.last_step is not real_step


def test_typed_transition_fields_survive_detached():
    state = torch.randn(3, 5, requires_grad=True)
    rules = torch.rand(3, 2, 2, requires_grad=True)
    weights = TeacherWeights(logit=torch.rand(3, 2, requires_grad=True),
                             feature=torch.rand(3, 2),
                             transition=AgentTransition(state * 2, rules, rules + 1))
    kept = weights.detached()
    assert isinstance(kept.transition, AgentTransition)
    assert not kept.logit.requires_grad and not kept.transition.state.requires_grad
    assert torch.equal(kept.transition.state, state * 2)
    assert kept.transition.actions is None
    assert set(kept.transition.as_dict()) == {'state', 'logit_rules', 'feature_rules'}
    kept.transition.actions = torch.rand(2, 3, 2, requires_grad=True)
    assert not kept.detached().transition.actions.requires_grad
    assert TeacherWeights(weights.logit, weights.feature).detached().transition is None


def test_the_benchmark_times_the_pools_own_teacher_run(two_teachers):
    from benchmarks.benchmark import TeacherForward
    distiller = make_distiller(two_teachers, teacher_channels_last=True)
    pool = distiller.teacher_pool
    inputs, samples = make_batch(distiller)
    heads, maps = pool.run(inputs, samples)
    calls = []
    original = pool.run_teacher
    pool.run_teacher = lambda *a, **k: calls.append(k) or original(*a, **k)
    for index in range(len(pool)):
        head = TeacherForward(pool, index)(dict(inputs=inputs, data_samples=samples))
        assert torch.equal(head, heads[index]) and not head.is_inference()
    assert calls == [dict(channels_last=True, autocast=None)] * 2
    TeacherForward(pool, 0, autocast=torch.bfloat16)(dict(inputs=inputs, data_samples=samples))
    assert calls[-1] == dict(channels_last=True, autocast=torch.bfloat16)
