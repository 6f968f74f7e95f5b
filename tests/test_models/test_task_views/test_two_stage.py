"""Two-stage detectors of mmdet's zoo (Faster R-CNN, Cascade R-CNN) shrunk for a CPU:
distilled through their RPN and FPN by DenseDetectionView (the default), with every
weighting, MMKD's hypergradient through the RoI heads included."""
import pytest
import torch

from benchmarks.families import FAMILIES, save_family_teachers
from tiny_models import det_batch

TWO_STAGE = ('Faster R-CNN', 'Cascade R-CNN')


@pytest.fixture(scope='module')
def two_stage_teacher_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('two_stage_teachers'))


def _distiller(name, folder, **kwargs):
    """The family as student (seed 0) and two teachers (seeds 1, 2), RPN objectness KD
    and feature KD on every FPN level."""
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    family = FAMILIES[name]
    checkpoints = save_family_teachers(family, folder, num_teachers=3)[1:]
    torch.manual_seed(0)
    model = MultiTeacherDistiller(
        student=family.entry(),
        teachers=[family.entry(name=f't{i}', checkpoint=c) for i, c in enumerate(checkpoints)],
        probe_shape=family.probe_shape,
        logit_kd=dict(type='SigmoidKLDivergence', weight=1.0), feature_kd=dict(weight=1.0),
        **kwargs)
    return model.train()


WEIGHTINGS = (
    dict(type='UniformWeighting'), dict(type='FixedWeighting', weights=[0.7, 0.3]),
    dict(type='ConfidenceWeighting'),
    dict(type='RLAgentWeighting', warmup_epochs=0), dict(type='MetaWeightNet', batch_size=2))
#: (detector, weighting) of the default run; the others run under ``slow``.
FAST = {('Faster R-CNN', 'ConfidenceWeighting'), ('Faster R-CNN', 'MetaWeightNet'),
        ('Cascade R-CNN', 'RLAgentWeighting')}


def _case(name, weighting):
    marks = () if (name, weighting['type']) in FAST else (pytest.mark.slow, )
    return pytest.param(name, weighting, id=f"{name}-{weighting['type']}".replace(' ', '_'),
                        marks=marks)


@pytest.mark.parametrize('name,weighting', [_case(n, w) for n in TWO_STAGE for w in WEIGHTINGS])
def test_two_stage_detectors_take_every_weighting(name, weighting, two_stage_teacher_dir):
    model = _distiller(name, two_stage_teacher_dir, weighting=weighting)
    assert type(model.task_view).__name__ == 'DenseDetectionView'  # the default
    assert model.task_view.head_module == 'rpn_head'
    if weighting['type'] == 'RLAgentWeighting':
        model.weighting.begin_step(0.0, seed=0)
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    step = model.last_step
    assert step.batch.student_logits.shape == (2, 1)  # the RPN's objectness
    assert step.batch.logit_kd.shape == step.batch.feature_kd.shape == (2, 2)
    assert len(step.batch.student_features) == 5  # every FPN level (P2-P6)
    assert {'student.loss_rpn_cls', 'student.loss_cls', 'loss_kd', 'loss_feat'} <= {
        k.replace('student.s0.', 'student.') for k in losses}  # Cascade: per stage
    assert torch.isfinite(step.weights.logit).all() and torch.isfinite(losses['loss_kd'])
    assert torch.allclose(step.weights.logit.sum(1), torch.ones(2), atol=1e-5)


def test_ebkd_is_refused_on_the_one_objectness_class(two_stage_teacher_dir):
    """EBKD weighs by the entropy of a softmax over the classes: over the RPN's one
    class it is 0 for every teacher, so the distiller refuses it at build."""
    with pytest.raises(ValueError, match='ConfidenceWeighting'):
        _distiller('Faster R-CNN', two_stage_teacher_dir,
                   weighting=dict(type='EntropyWeighting'))


@pytest.mark.slow  # the family matrix trains Faster R-CNN with MMKD in the default run
@pytest.mark.parametrize('name', TWO_STAGE)
def test_mmkd_hypergradient_runs_through_the_roi_heads(name, two_stage_teacher_dir):
    """The look-ahead's task-loss step runs the RoI heads (mmcv RoIAlign, replaced by
    a twice-differentiable equivalent in the look-ahead)."""
    from mmkd_ext.engine.hooks import MetaWeightHook
    model = _distiller(name, two_stage_teacher_dir,
                       weighting=dict(type='MetaWeightNet', batch_size=2))
    student_params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    inputs, samples = det_batch(model)
    outer = MetaWeightHook().hypergradient(
        model, torch.optim.SGD(student_params, lr=0.01, momentum=0.9), inputs, samples)
    assert outer > 0
    grads = [p.grad for p in model.weighting.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
