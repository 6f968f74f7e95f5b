"""MTKD-RL: the agent weighting, its policies and RLAgentHook."""
import json
import uuid

import pytest
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmkd_ext.engine.hooks import RLAgentHook
from mmkd_ext.engine.hooks.rl_agent_hook import standardized_reward
from mmkd_ext.models.weighting import DirichletPolicy, RLAgentWeighting
from conftest import (load_kd_config, make_batch, make_distiller, save_checkpoint,
                      tiny_classifier)


def rl_distiller(teachers, **weighting):
    weighting = dict(dict(type='RLAgentWeighting', warmup_epochs=0), **weighting)
    model = make_distiller(teachers, weighting=weighting)
    model.train()
    model.weighting.begin_step(epoch=0.0, seed=1)
    return model


@pytest.fixture
def three_teachers(two_teachers, tmp_path):
    third = tiny_classifier(5)
    return two_teachers + [dict(name='c', config=third,
                                checkpoint=save_checkpoint(third, tmp_path / 'c.pth', 3))]


@pytest.mark.parametrize('k', [2, 3])
def test_state_has_one_block_per_teacher(k, three_teachers):
    model = rl_distiller(three_teachers[:k])
    inputs, samples = make_batch(model, batch_size=5)
    model.loss(inputs, samples)
    state = model.last_step.weights.transition.state
    embed_dims = [8 * w for w in (8, 6, 5)[:k]]  # last ResNet stage of each teacher
    assert state.shape == (5, sum(3 + 10 + d for d in embed_dims))
    assert not state.requires_grad
    # The first block of teacher 0 is its cosine, KD term, loss, embedding, logits.
    batch = model.last_step.batch
    assert torch.allclose(state[:, 1], batch.logit_kd[:, 0])
    assert torch.allclose(state[:, 2], batch.teacher_loss[:, 0])
    embedding = batch.teacher_features[0][-1].mean((2, 3))
    assert torch.allclose(state[:, 3:3 + embed_dims[0]], embedding)
    assert torch.allclose(state[:, 3 + embed_dims[0]:13 + embed_dims[0]], batch.teacher_logits[0])
    assert state[:, 0].abs().max() <= 1 + 1e-6  # a cosine


@pytest.mark.parametrize('options', [
    dict(policy='deterministic'), dict(policy='deterministic', dynamic=True),
    dict(policy='stochastic'), dict(policy=dict(type='DirichletPolicy', concentration=2.0))])
def test_weights_sum_to_one_after_mixing(options, three_teachers):
    model = rl_distiller(three_teachers, **options)
    inputs, samples = make_batch(model, batch_size=6)
    for training in (True, False):
        model.train(training)
        weights = model.weighting(model.compute_kd_batch(
            inputs, samples, RLAgentWeighting.requires)[0])
        for w in (weights.logit, weights.feature):
            assert w.shape == (6, 3) and (w > 0).all()
            assert torch.allclose(w.sum(1), torch.ones(6), atol=1e-5)


def test_mixing_is_a_third_each_of_agent_confidence_and_gap(two_teachers):
    model = rl_distiller(two_teachers)
    inputs, samples = make_batch(model, batch_size=4)
    batch, _ = model.compute_kd_batch(inputs, samples, RLAgentWeighting.requires)
    weights = model.weighting(batch)
    state = weights.transition.state
    pi = F.softmax(model.weighting.agent(state)[0], dim=1)
    confidence = (1 - F.softmax(batch.teacher_loss, dim=1))  # K = 2: divided by K - 1 = 1
    expected = (pi + confidence + F.softmax(batch.logit_kd, dim=1)) / 3
    assert torch.allclose(weights.logit, expected, atol=1e-6)


def test_warmup_weights_every_teacher_one(two_teachers):
    model = rl_distiller(two_teachers, warmup_epochs=1)
    inputs, samples = make_batch(model, batch_size=4)
    model.weighting.begin_step(epoch=0.9)
    losses = model.loss(inputs, samples)
    assert torch.equal(model.last_step.weights.logit, torch.ones(4, 2))
    assert torch.equal(model.last_step.weights.feature, torch.ones(4, 2))
    batch = model.last_step.batch
    assert losses['loss_kd'].item() == pytest.approx(batch.logit_kd.sum(1).mean().item(), rel=1e-6)
    model.weighting.begin_step(epoch=1.0)
    model.loss(inputs, samples)
    assert torch.allclose(model.last_step.weights.logit.sum(1), torch.ones(4))


def test_reward_is_standardised_in_the_batch_and_clipped():
    reward = torch.tensor([-1.0, -2.0, -3.0, -10.0])
    z = (reward - reward.mean()) / reward.std()  # 1.0 0.74 0.47 -1.33 (times a scale)
    assert torch.allclose(standardized_reward(reward), z.clamp(0, 1))
    assert torch.allclose(standardized_reward(torch.tensor([0.0, 2.0])),
                          torch.tensor([0.0, 0.7071068]))
    assert torch.equal(standardized_reward(torch.tensor([5.0])), torch.zeros(1))
    assert torch.equal(standardized_reward(torch.full((3, ), 2.0)), torch.zeros(3))


def test_hook_reward_is_minus_the_step_total_loss(two_teachers):
    """The stored reward comes from CE + alpha * KD + beta * FeatKD per sample."""
    model = rl_distiller(two_teachers)
    inputs, samples = make_batch(model, batch_size=6)
    model.loss(inputs, samples)
    step = model.last_step
    ce = F.cross_entropy(step.batch.student_logits, torch.cat([s.gt_label for s in samples]),
                         reduction='none')
    total = (ce + (step.weights.logit * step.batch.logit_kd).sum(1)
             + 2.0 * (step.weights.feature * step.batch.feature_kd).sum(1))
    hook = RLAgentHook(agent_interval=100, update_at_epoch_end=False)
    hook.iters_per_epoch = 100
    runner = type('R', (), dict(model=model, iter=0, message_hub=_Hub()))()
    hook.after_train_iter(runner, 0)
    assert torch.allclose(hook.store[0]['reward'], standardized_reward(-total), atol=1e-5)
    assert runner.message_hub.scalars['train/agent_reward'] == pytest.approx(-total.mean().item(),
                                                                              rel=1e-5)


class _Hub:
    def __init__(self):
        self.scalars = {}

    def update_scalar(self, key, value):
        self.scalars[key] = float(value)


def _hand_made_transition(k=2, classes=3, dims=(2, 2)):
    g = torch.Generator().manual_seed(0)
    weighting = RLAgentWeighting(hidden_channels=5, warmup_epochs=0)
    torch.manual_seed(0)
    weighting.setup(k, classes, dims)
    batch = 4
    state = torch.randn(batch, sum(3 + classes + d for d in dims), generator=g)
    rules = [F.softmax(torch.randn(batch, 2, k, generator=g), dim=2) for _ in range(2)]
    transition = dict(state=state, logit_rules=rules[0], feature_rules=rules[1],
                      reward=torch.tensor([1.0, 0.0, 0.5, 0.0]))
    return weighting, transition


def _objective_by_hand(params, t):
    """mean(-r log wL) + mean(-r log wF), the weights mixed a third each."""
    w0, wl, bl, wf, bf = params
    hidden = torch.relu(t['state'] @ w0.t())
    total = 0
    for scores, rules in ((hidden @ wl.t() + bl, t['logit_rules']),
                          (hidden @ wf.t() + bf, t['feature_rules'])):
        w = (F.softmax(scores, 1) + rules[:, 0] + rules[:, 1]) / 3
        total = total - (t['reward'][:, None] * w.log()).mean()
    return total


def test_agent_update_takes_the_sgd_step_the_objective_says():
    weighting, transition = _hand_made_transition()
    agent = weighting.agent
    names = [agent.trunk[0].weight, agent.logit_head.weight, agent.logit_head.bias,
             agent.feature_head.weight, agent.feature_head.bias]
    before = [p.detach().clone().requires_grad_() for p in names]
    grads = torch.autograd.grad(_objective_by_hand(before, transition), before)

    hook = RLAgentHook()
    hook.optimizer = torch.optim.SGD(weighting.parameters(), lr=0.1)
    hook.store = [transition]
    loss = hook.update_agent(weighting)
    assert loss == pytest.approx(_objective_by_hand(before, transition).item(), rel=1e-5)
    for p0, g, p1 in zip(before, grads, names):
        assert torch.allclose(p1, p0 - 0.1 * g, atol=1e-7)
    assert hook.store == []
    assert all(not p.requires_grad and p.grad is None for p in weighting.parameters())
    after = [p.detach() for p in names]
    assert _objective_by_hand(after, transition) < _objective_by_hand(before, transition)
    # The rewarded sample's agent weights move towards balance (the reference's objective).
    def entropy(params):
        hidden = torch.relu(transition['state'][:1] @ params[0].t())
        p = F.softmax(hidden @ params[1].t() + params[2], 1)
        return -(p * p.log()).sum()
    assert entropy(after) > entropy(before)


def test_dynamic_mixing_weights_learn_from_the_same_objective():
    _, transition = _hand_made_transition()
    weighting = RLAgentWeighting(hidden_channels=5, dynamic=True, warmup_epochs=0)
    weighting.setup(2, 3, (2, 2))
    assert torch.allclose(weighting.mixing(), torch.full((2, 3), 1 / 3))
    hook = RLAgentHook()
    hook.optimizer = torch.optim.SGD(weighting.parameters(), lr=0.1)
    hook.store = [transition]
    hook.update_agent(weighting)
    mixing = weighting.mixing()
    assert not torch.allclose(mixing, torch.full((2, 3), 1 / 3))
    assert torch.allclose(mixing.sum(1), torch.ones(2))


def test_stochastic_gradient_estimator_is_unbiased_on_a_bandit():
    """REINFORCE with a baseline: E[-grad objective] = grad E[reward]. Reward of an
    action a on the simplex: a . v; its expectation is p . v, p the Dirichlet's mean
    (1 - eps) softmax + eps / K."""
    policy = DirichletPolicy(concentration=5.0, exploration=0.1)
    scores = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    p = 0.9 * F.softmax(scores, 0) + 0.1 / 3
    (true_grad, ) = torch.autograd.grad(p @ v, scores)
    assert torch.allclose(policy.mean_action(scores), p)

    chunks, n = 40, 2000
    estimates = []
    for chunk in range(chunks):
        batch_scores = scores.expand(n, 3)
        actions = policy.act(batch_scores, explore=True, seed=chunk)
        reward = actions @ v
        loss = policy.objective(batch_scores, actions, None, reward, baseline=0.8)
        estimates.append(-torch.autograd.grad(loss, scores)[0])
    estimates = torch.stack(estimates)
    mean, stderr = estimates.mean(0), estimates.std(0) / chunks**0.5
    assert ((mean - true_grad).abs() < 4 * stderr).all(), (mean, true_grad, stderr)
    assert stderr.max() < 0.25 * true_grad.abs().max()  # the test can tell a wrong sign
    # Same seed, same action; the global RNG is neither used nor advanced.
    state = torch.get_rng_state()
    a1 = policy.act(scores[None], explore=True, seed=7)
    assert torch.equal(a1, policy.act(scores[None], explore=True, seed=7))
    assert torch.equal(state, torch.get_rng_state())
    assert torch.allclose(policy.act(scores[None], explore=False), p[None])
    samples = policy.act(scores.expand(20000, 3), explore=True, seed=1)
    assert torch.allclose(samples.mean(0), p, atol=0.01)
    # A saturated agent keeps a valid policy with finite log-densities.
    saturated = torch.tensor([[80.0, -80.0, -80.0]])
    action = policy.act(saturated, explore=True, seed=0)
    assert torch.isfinite(policy.objective(saturated, action, None, torch.ones(1), 0.0))


def test_bad_configurations_are_clear(two_teachers):
    with pytest.raises(ValueError, match='feature KD'):
        make_distiller(two_teachers, feature_kd=None, weighting=dict(type='RLAgentWeighting'))
    with pytest.raises(ValueError, match='dynamic'):
        RLAgentWeighting(policy='stochastic', dynamic=True)
    with pytest.raises(ValueError, match="'deterministic', 'stochastic'"):
        RLAgentWeighting(policy='greedy')
    model = make_distiller(two_teachers, weighting=dict(type='RLAgentWeighting'))
    model.train()
    with pytest.raises(RuntimeError, match='RLAgentHook'):
        model.loss(*make_batch(model))


def rl_runner(method, shapes_root, teacher_dir, work_dir, max_iters, resume=False):
    cfg = load_kd_config(method, shapes_root, teacher_dir, max_iters=max_iters)
    cfg.merge_from_dict({
        'model.weighting.warmup_epochs': 0.2,  # 10 iterations per epoch: 2 warm-up steps
        'custom_hooks': [dict(type='mmkd_ext.RLAgentHook', agent_interval=2)],
    })
    cfg.work_dir, cfg.resume = str(work_dir), resume
    cfg.experiment_name = f'{method}_{uuid.uuid4().hex[:8]}'
    cfg.randomness = dict(seed=0, deterministic=True)
    return Runner.from_cfg(cfg)


class StopAfter(Hook):
    """Simulates a crash right after iteration ``n`` (its checkpoint is written)."""
    priority = 'LOWEST'

    def __init__(self, n):
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.n:
            raise KeyboardInterrupt('simulated crash')


def test_stochastic_rl_resume_equals_an_uninterrupted_run(shapes_root, teacher_dir, tmp_path):
    """The stochastic policy's exploration noise and baseline continue exactly (the
    deterministic policy is resumed after a SIGKILL in test_faults.py)."""
    method = 'mtkd_rl_stochastic'
    full = rl_runner(method, shapes_root, teacher_dir, tmp_path / 'full', max_iters=6)
    initial = {k: v.clone() for k, v in full.model.weighting.state_dict().items()}
    full.train()
    assert any(not torch.equal(initial[k], v)
               for k, v in full.model.weighting.state_dict().items())
    scalars = full.message_hub.log_scalars
    assert 'train/agent_loss' in scalars and 'train/agent_reward' in scalars

    crashed = rl_runner(method, shapes_root, teacher_dir, tmp_path / 'resumed', max_iters=6)
    crashed.register_hook(StopAfter(3))
    with pytest.raises(KeyboardInterrupt):
        crashed.train()
    saved = torch.load(tmp_path / 'resumed' / 'iter_3.pth', weights_only=False)
    assert len(saved['rl_agent_hook']['store']) == 1  # iteration 3's batch, not yet used

    resumed = rl_runner(method, shapes_root, teacher_dir, tmp_path / 'resumed', max_iters=6,
                        resume=True)
    resumed.train()
    expected, got = full.model.state_dict(), resumed.model.state_dict()
    differ = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not differ, differ
    hook = next(h for h in resumed.hooks if isinstance(h, RLAgentHook))
    full_hook = next(h for h in full.hooks if isinstance(h, RLAgentHook))
    assert hook.baseline == full_hook.baseline
    assert str(hook.optimizer.state_dict()) == str(full_hook.optimizer.state_dict())


def test_stochastic_actions_stay_on_the_simplex_under_autocast(two_teachers):
    """bfloat16 autocast (CPU): the agent runs in bf16, the stored actions keep a
    density and the update runs."""
    model = rl_distiller(two_teachers, policy='stochastic')
    inputs, samples = make_batch(model, batch_size=6)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model.loss(inputs, samples)
    transition = model.last_step.weights.transition
    assert transition.actions.dtype == torch.float32
    hook = RLAgentHook()
    hook.optimizer = torch.optim.SGD(model.weighting.parameters(), lr=0.1)
    hook.store = [dict(transition.as_dict(), reward=torch.rand(6))]
    assert torch.isfinite(torch.tensor(hook.update_agent(model.weighting)))


def test_train_and_test_tools_run_mtkd_rl(shapes_root, teacher_dir, tmp_path):
    from conftest import KD_CONFIG, cli_options, run_tool
    config = KD_CONFIG.format('mtkd_rl_stochastic')
    options = cli_options(shapes_root, teacher_dir) + ['model.weighting.warmup_epochs=0.4']
    result = run_tool('tools/train.py', config, '--work-dir', str(tmp_path), *options)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert 'agent_loss' in log and 'agent_reward' in log and 'r18w24.w_logit' in log
    checkpoint = (tmp_path / 'last_checkpoint').read_text().strip()
    result = run_tool('tools/test.py', config, checkpoint, '--work-dir', str(tmp_path),
                      '--metrics-json', str(tmp_path / 'metrics.json'), *options)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 0.0 <= json.loads((tmp_path / 'metrics.json').read_text())['accuracy/top1'] <= 100
