"""DETR-family detectors through DETRView: the view's rules on hand-made tensors, every
variant of mmdet's zoo (DETR, Deformable DETR, DINO, Conditional DETR, DAB-DETR) shrunk
for a CPU, the distiller on them, and training through mmengine's Runner."""
import pytest
import torch
import torch.nn as nn

from benchmarks.families import DET_CLASSES, DETR, family_kd_config, save_family_checkpoint
from conftest import DEMO_TASKS
from tiny_models import det_batch

#: The view's rules on tensors: C classes, Q matching queries.
C, Q = 3, 4


#: The DETR variants of the family table.
DETR_FAMILIES = {f.name: f for f in DETR}


def _build(family, seed=0):
    """The family's model, initialised (Deformable DETR's and DINO's level embeddings
    are uninitialised memory until ``init_weights``)."""
    from mmkd_ext.utils.model_builder import build_model
    torch.manual_seed(seed)
    model = build_model(family.config, cfg_options=family.cfg_options)[0]
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def detr_teacher_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('detr_teachers'))


def _distiller(student, teachers, folder, **kwargs):
    """A distiller of the ``student`` family (seed 0) from one teacher of each
    ``teachers`` family (random weights, teacher ``i`` of seed ``i + 1``), per-image
    sigmoid KD and feature KD by default."""
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    entries = [family.entry(name=f't{i}', checkpoint=save_family_checkpoint(family, folder, i + 1))
               for i, family in enumerate(teachers)]
    kwargs.setdefault('logit_kd', dict(type='SigmoidKLDivergence', weight=1.0))
    kwargs.setdefault('feature_kd', dict(weight=1.0))
    torch.manual_seed(0)
    model = MultiTeacherDistiller(student=student.entry(), teachers=entries,
                                  probe_shape=student.probe_shape, **kwargs)
    model.student.init_weights()
    return model.train()


@pytest.fixture(scope='module')
def dino_distiller(detr_teacher_dir):
    """A DINO student, a DINO and a Deformable DETR teacher; confidence weighting."""
    return _distiller(DETR_FAMILIES['DINO'],
                      [DETR_FAMILIES['DINO'], DETR_FAMILIES['Deformable DETR']],
                      detr_teacher_dir, weighting=dict(type='ConfidenceWeighting'))


def _view(softmax=False):
    from mmkd_ext.models.task_views import DETRView
    view = DETRView()
    view.num_classes, view.num_queries, view.softmax = C, Q, softmax
    return view


def _samples(*labels):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for image_labels in labels:
        sample = DetDataSample()
        sample.gt_instances = InstanceData(
            bboxes=torch.zeros(len(image_labels), 4),
            labels=torch.tensor(image_labels, dtype=torch.long))
        samples.append(sample)
    return samples


# ------------------------------------------------------------------ the rules
def test_query_logits_are_the_last_layers_matching_queries():
    """A raw head output ``[L, B, Q', C]`` (DINO in training: denoising queries
    first) gives the last layer's last Q queries; teacher_forward's ``[B, Q, C]``
    is taken as it is."""
    view = _view()
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 2, 6 + Q, C, generator=g)  # 2 layers, 6 denoising queries
    raw = (scores, torch.rand(2, 2, 6 + Q, 4, generator=g))
    assert torch.equal(view.query_logits(raw), scores[-1, :, 6:])
    assert torch.equal(view.query_logits(scores[-1, :, 6:]), scores[-1, :, 6:])
    assert torch.equal(view.sample_logits(raw), scores[-1, :, 6:].amax(1))


def test_softmax_scores_become_the_logits_of_their_class_probabilities():
    view = _view(softmax=True)
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(1, 2, Q, C + 1, generator=g) * 3  # background last
    probs = scores[-1].softmax(-1)[..., :C]
    logits = view.query_logits((scores, None))
    assert torch.allclose(logits, torch.log(probs / (1 - probs)), atol=1e-5)
    # per image: the best query's probability of each class, as a logit
    assert torch.allclose(view.sample_logits((scores, None)).sigmoid(), probs.amax(1),
                          atol=1e-6)


def test_logit_kd_is_the_sigmoid_kl_of_the_per_image_logits():
    """Queries of two models do not correspond: KD compares each class's best query."""
    from mmkd_ext.models.losses import SigmoidKLDivergence
    view = _view()
    g = torch.Generator().manual_seed(2)
    student = (torch.randn(1, 2, Q, C, generator=g), None)
    teacher = torch.randn(2, Q + 3, C, generator=g)  # a teacher with more queries
    p = student[0][-1].amax(1).div(2).sigmoid()
    q = teacher.amax(1).div(2).sigmoid()
    expected = 4 * (q * (q / p).log() + (1 - q) * ((1 - q) / (1 - p)).log()).sum(1)
    got = view.logit_kd(SigmoidKLDivergence(temperature=2.0), student, teacher, None)
    assert torch.allclose(got, expected, rtol=1e-5)


def test_task_loss_proxy_is_the_focal_loss_of_class_presence():
    view = _view()
    samples = _samples([0, 2, 2], [], [1])  # an image without objects in the middle
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 0.0, 1.0], [0.3, -0.2, -4.0]])
    present = torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0]])
    p = logits.sigmoid()
    p_t = torch.where(present.bool(), p, 1 - p)
    alpha = torch.where(present.bool(), 0.25, 0.75)
    focal = -alpha * (1 - p_t)**2 * p_t.log()
    expected = focal.sum(1) / torch.tensor([2.0, 1.0, 1.0])  # classes present, at least 1
    teacher_out = logits[:, None]  # one query per image
    assert torch.allclose(view.sample_loss(teacher_out, samples), expected, rtol=1e-5)
    assert torch.allclose(view.sample_losses([teacher_out, teacher_out], samples),
                          expected[:, None].expand(3, 2), rtol=1e-5)
    perfect = (present * 20 - 10)[:, None]
    assert (view.sample_loss(perfect, samples) < 1e-4).all()


def test_hard_images_have_a_class_without_a_query_above_one_half():
    view = _view()
    logits = torch.full((3, C), -2.0)
    logits[0, 1] = 1.0  # image 0 finds its class; image 1 misses class 2; image 2 has none
    assert view.hard_samples(logits, _samples([1], [1, 2], [])).tolist() == [False, True, False]


# ------------------------------------------------------------------ the models
@pytest.mark.parametrize('name', [
    'DAB-DETR', 'DETR', 'DINO', 'Deformable DETR',
    pytest.param('Conditional DETR', marks=pytest.mark.slow)])  # 256 wide: a teacher below
def test_teacher_forward_is_the_last_layer_of_the_models_own_forward(name):
    """Every variant: the view's query logits are mmdet's ``_forward`` class scores
    (the last decoder layer's), and the default view of the model is DETRView."""
    from mmkd_ext.models.task_views import DETRView, default_detection_view
    from mmkd_ext.models.task_views.detr import _presence_logits
    model = _build(DETR_FAMILIES[name]).eval()
    inputs, samples = det_batch(model)
    view = DETRView()
    view.bind(model)
    assert default_detection_view(model) == 'DETRView'
    assert view.softmax == (name == 'DETR')  # DETR's softmax over classes + background
    with torch.no_grad():
        got = view.teacher_forward(model, inputs, samples)
        scores = model._forward(inputs, samples)[0]
    assert got.shape == (2, 10, DET_CLASSES)
    assert torch.allclose(got, _presence_logits(scores[-1], view.softmax), atol=1e-6)


def test_dino_distils_per_image_through_its_matching_queries(dino_distiller):
    from mmkd_ext.models.losses import SigmoidKLDivergence
    model = dino_distiller
    assert type(model.task_view).__name__ == 'DETRView'  # chosen by the student's class
    inputs, samples = det_batch(model)
    torch.manual_seed(0)  # the denoising queries' noise
    losses = model.loss(inputs, samples)
    batch = model.last_step.batch
    assert batch.student_logits.shape == (2, DET_CLASSES)
    assert batch.teacher_logits.shape == (2, 2, DET_CLASSES)
    assert batch.logit_kd.shape == batch.feature_kd.shape == batch.teacher_loss.shape == (2, 2)
    assert len(batch.student_features) == 4  # every ChannelMapper level
    assert {'student.loss_cls', 'student.dn_loss_cls', 'loss_kd', 'loss_feat'} <= set(losses)
    with torch.no_grad():
        for k, teacher in enumerate(model.teachers):
            own = model.task_view.teacher_forward(teacher, inputs, samples).amax(1)
            assert torch.allclose(batch.teacher_logits[k], own, atol=1e-5)
    kd = SigmoidKLDivergence()(batch.student_logits, batch.teacher_logits[0])
    assert torch.allclose(batch.logit_kd[:, 0], kd, rtol=1e-5)
    # the KD term reaches the last decoder layer's classifier, not the first one's
    branches = model.student.bbox_head.cls_branches  # DINO's last one: the encoder's
    last_layer = branches[len(model.student.decoder.layers) - 1]
    first, last = torch.autograd.grad(losses['loss_kd'], [branches[0].weight, last_layer.weight],
                                      allow_unused=True)
    assert (first is None or not first.any()) and last.abs().sum() > 0

    torch.manual_seed(0)
    distill = model(inputs, samples, mode='distill')  # MMKD's look-ahead: with gradients
    assert set(distill) == {'loss_kd', 'loss_feat'} and distill['loss_kd'].requires_grad
    for key, value in distill.items():
        assert torch.allclose(value, losses[key], rtol=1e-5), key


def test_softmax_and_sigmoid_detrs_distil_into_each_other(detr_teacher_dir):
    """A DETR student (softmax) from a Conditional DETR and a DAB-DETR (sigmoid):
    the per-image logits are presence logits in every model."""
    model = _distiller(DETR_FAMILIES['DETR'],
                       [DETR_FAMILIES['Conditional DETR'], DETR_FAMILIES['DAB-DETR']],
                       detr_teacher_dir, weighting=dict(type='EntropyWeighting'))
    inputs, samples = det_batch(model)
    model.loss(inputs, samples)
    batch = model.last_step.batch
    assert model.task_view.softmax
    assert torch.isfinite(batch.logit_kd).all() and (batch.logit_kd > 0).all()
    assert batch.teacher_logits.shape == (2, 2, DET_CLASSES)


def test_what_the_view_cannot_read_is_refused_at_build(dino_distiller, tmp_path):
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    from mmkd_ext.models.task_views import DenseDetectionView, DETRView
    from mmkd_ext.utils.model_builder import build_model
    from conftest import save_checkpoint
    from tiny_models import tiny_retinanet
    retina = [dict(name='retina', config=tiny_retinanet(8),
                   checkpoint=save_checkpoint(tiny_retinanet(8), tmp_path / 'retina.pth'))]
    with pytest.raises(TypeError, match="RetinaNet, not a DETR-family detector"):
        MultiTeacherDistiller(student=DETR_FAMILIES['DAB-DETR'].entry(), teachers=retina,
                              probe_shape=DETR_FAMILIES['DINO'].probe_shape, feature_kd=None,
                              logit_kd=None)
    with pytest.raises(TypeError, match='distil it with DETRView'):
        DenseDetectionView().bind(dino_distiller.student)
    with pytest.raises(TypeError, match='the student is a RetinaNet'):
        DETRView().bind(build_model(tiny_retinanet(8))[0])
    grounding = _build(DETR_FAMILIES['DAB-DETR'])
    grounding.__class__ = type('GroundingDINO', (type(grounding), ), {})
    with pytest.raises(TypeError, match='GroundingDINO.*text prompts'):
        DETRView().bind(grounding)


def test_a_detector_without_a_dense_head_or_queries_is_refused_with_the_fix():
    """E.g. Mask2Former (mask queries): the default detection view names what it
    supports and how to plug in a view of one's own."""
    from mmkd_ext.models.task_views import DenseDetectionView, default_detection_view
    mask2former = type('Mask2Former', (nn.Module, ), {})()
    assert default_detection_view(mask2former) == 'DenseDetectionView'
    with pytest.raises(TypeError, match='Mask2Former has none.*model.task_view'):
        DenseDetectionView().bind(mask2former)


@pytest.mark.slow  # the default run trains DAB-DETR with MMKD below
@pytest.mark.parametrize('name', ['DAB-DETR', 'DINO', 'DETR'])
def test_mmkd_hypergradient_runs_through_a_detr(name, detr_teacher_dir):
    from mmkd_ext.engine.hooks import MetaWeightHook
    family = DETR_FAMILIES[name]
    model = _distiller(family, [family, family], detr_teacher_dir,
                       weighting=dict(type='MetaWeightNet', batch_size=2))
    student_params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    inputs, samples = det_batch(model)
    outer = MetaWeightHook().hypergradient(
        model, torch.optim.AdamW(student_params, lr=1e-3), inputs, samples)
    assert outer > 0
    grads = [p.grad for p in model.weighting.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


# ------------------------------------------------------------------ the runner
METHODS = ('aver', 'fixed', 'entropy', 'confidence', 'mmkd', 'mtkd_rl')
FAST_RUNS = {('DAB-DETR', 'mmkd')}


def _run_param(name, method):
    marks = () if (name, method) in FAST_RUNS else (pytest.mark.slow, )
    return pytest.param(name, method, id=f'{name}-{method}'.replace(' ', '_'), marks=marks)


@pytest.mark.parametrize('name,method', [_run_param(n, m) for n in DETR_FAMILIES
                                         for m in METHODS])
def test_detr_trains_with_every_weighting(name, method, coco_root, detr_teacher_dir,
                                          tmp_path):
    """Two iterations through mmengine's Runner on the generated COCO data, the DETR
    view chosen by default, feature KD on the neck's default layers."""
    from mmengine.runner import Runner
    family, task = DETR_FAMILIES[name], DEMO_TASKS['detection']
    checkpoints = [save_family_checkpoint(family, detr_teacher_dir, seed) for seed in (1, 2)]
    cfg = family_kd_config(family, method, task.kd_config, task.data_options(coco_root),
                           checkpoints, str(tmp_path))
    cfg.merge_from_dict({'train_dataloader.dataset.pipeline.2.scale': (96, 96)})
    runner = Runner.from_cfg(cfg)
    runner.train()
    step = runner.model.last_step
    assert type(runner.model.task_view).__name__ == 'DETRView' and runner.iter == 2
    assert torch.isfinite(step.batch.logit_kd).all() and torch.isfinite(step.weights.logit).all()
    if method != 'entropy':  # EBKD's weights are not normalised
        assert torch.allclose(step.weights.logit.sum(1), torch.ones(2), atol=1e-5)
