"""Head KD between dense heads of different layouts (DenseDetectionView's rule): the
joint class probability, the best prior per location, levels matched by map size and
resampled, each against a hand computation with explicit loops."""
import math

import pytest
import torch

from conftest import save_checkpoint
from tiny_models import DET_CLASSES, det_batch, det_distiller, tiny_faster_rcnn, tiny_retinanet


def _view(num_classes=2, **kwargs):
    from mmkd_ext.models.task_views import DenseDetectionView
    view = DenseDetectionView(**kwargs)
    view.num_classes = num_classes
    return view


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _bernoulli_kl(q: float, p: float) -> float:
    return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))


def test_joint_logit_is_the_logit_of_the_product_of_probabilities():
    from mmkd_ext.models.task_views.detection import joint_logit
    a = torch.tensor([-30.0, -3.0, 0.0, 2.0, 12.0, 30.0], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0, 0.5, 4.0, 12.0, 30.0], dtype=torch.float64)
    p = torch.sigmoid(a) * torch.sigmoid(b)
    expected = torch.log(p) - torch.log1p(-p)
    torch.testing.assert_close(joint_logit(a, b)[:-1], expected[:-1])
    # Where 1 - p rounds to 0 in float64 the log-space form stays finite and large.
    assert torch.isfinite(joint_logit(a, b)).all() and joint_logit(a, b)[-1] > 28
    a32 = torch.tensor([25.0, -25.0], requires_grad=True)
    joint_logit(a32, torch.tensor([25.0, 25.0])).sum().backward()
    assert torch.isfinite(a32.grad).all()


def test_heads_of_other_priors_and_levels_meet_at_the_best_prior_and_the_nearest_level():
    """A student of one prior per location and levels 4x4, 2x2, 1x1 against a teacher
    of three priors with score factors (YOLOX-like objectness) and levels 4x4, 2x2: the
    1x1 level takes the teacher's 2x2 level max-pooled; the teacher's score is the
    best prior's sigmoid(cls) * sigmoid(objectness)."""
    from mmkd_ext.models.losses import SigmoidKLDivergence
    view, c, a = _view(), 2, 3
    g = torch.Generator().manual_seed(0)
    s_cls = [torch.randn(2, c, n, n, generator=g) for n in (4, 2, 1)]
    t_cls = [torch.randn(2, a * c, n, n, generator=g) for n in (4, 2)]
    t_obj = [torch.randn(2, a, n, n, generator=g) for n in (4, 2)]
    student = (s_cls, [torch.zeros(2, 4, n, n) for n in (4, 2, 1)])
    teacher = (t_cls, [torch.zeros(2, 4 * a, n, n) for n in (4, 2)], t_obj)

    def teacher_prob(image, level, cls, cells):  # best prior, best cell of the area
        return max(_sigmoid(t_cls[level][image, prior * c + cls, y, x].item())
                   * _sigmoid(t_obj[level][image, prior, y, x].item())
                   for prior in range(a) for y, x in cells)

    expected = []
    for image in range(2):
        terms = []
        for level, n in enumerate((4, 2, 1)):
            t_level = min(level, 1)
            for y in range(n):
                for x in range(n):
                    cells = [(y, x)] if n > 1 else [(i, j) for i in range(2) for j in range(2)]
                    terms.append(sum(_bernoulli_kl(teacher_prob(image, t_level, cls, cells),
                                                   _sigmoid(s_cls[level][image, cls, y, x].item()))
                                     for cls in range(c)))
        expected.append(sum(terms) / len(terms))  # 16 + 4 + 1 locations
    got = view.logit_kd(SigmoidKLDivergence(), student, teacher, None)
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-4, atol=1e-6)
    assert view.alignment(student, teacher) == [
        'the best of 1 priors per location against the best of 3',
        'student level 2 (1x1) from teacher level 1 (2x2), max-pooled']


def test_a_finer_student_level_takes_the_teacher_cell_containing_it():
    """A student level of 4x4 against a teacher with a 2x2 level only (nearest
    upsampling), several priors on the student's side (its best is compared), and the
    KD average weighted by the teacher's best class probability. With an 8x8 level
    as well, equally near in scale, the finer one is taken."""
    from mmkd_ext.models.losses import SigmoidKLDivergence
    view, c = _view(weight_by_teacher_score=True), 2
    g = torch.Generator().manual_seed(1)
    s_cls = [torch.randn(1, 2 * c, 4, 4, generator=g)]  # two priors
    t_cls = [torch.randn(1, c, 8, 8, generator=g), torch.randn(1, c, 2, 2, generator=g)]
    student, teacher = (s_cls, [None]), (t_cls, [None, None])
    terms, weights = [], []
    for y in range(4):
        for x in range(4):
            q = [_sigmoid(t_cls[1][0, cls, y // 2, x // 2].item()) for cls in range(c)]
            p = [_sigmoid(max(s_cls[0][0, prior * c + cls, y, x].item() for prior in range(2)))
                 for cls in range(c)]
            terms.append(sum(_bernoulli_kl(qc, pc) for qc, pc in zip(q, p)))
            weights.append(max(q))
    assert view.alignment(student, teacher) == [
        'the best of 2 priors per location against the best of 1',
        'student level 0 (4x4) from teacher level 0 (8x8), max-pooled', 'teacher levels [1] unused']
    teacher = ([t_cls[1]], [None])  # the coarse level alone
    expected = sum(t * w for t, w in zip(terms, weights)) / sum(weights)
    got = view.logit_kd(SigmoidKLDivergence(), student, teacher, None)
    torch.testing.assert_close(got, torch.tensor([expected]), rtol=1e-4, atol=1e-6)
    assert view.alignment(student, teacher) == [
        'the best of 2 priors per location against the best of 1',
        'student level 0 (4x4) from teacher level 0 (2x2), resampled to the nearest cell']


def test_levels_of_equal_size_are_matched_by_their_place():
    """Small inputs collapse the coarse levels to 1x1: heads of the same sizes are
    compared level by level, and among several levels of the student's size the one
    of its place is taken."""
    from mmkd_ext.models.task_views.detection import match_levels
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert match_levels(sizes, sizes) == [0, 1, 2, 3, 4]
    assert match_levels(sizes + [(1, 1)], sizes) == [0, 1, 2, 3, 4, 4]
    assert match_levels([(4, 4), (2, 2), (1, 1)], sizes) == [1, 2, 3]
    assert match_levels([(16, 16), (3, 3)], sizes) == [0, 1]  # by scale, ties to the finer
    view, c = _view(), 2
    same = ([torch.randn(1, c, *s) for s in sizes], [None] * 5)
    assert view.alignment(same, same) == []


def test_per_image_logits_and_task_loss_read_the_joint_scores():
    """With score factors the per-image logit of a class is the logit of its best
    sigmoid(cls) * sigmoid(factor) anywhere; the focal proxy sees the same scores (a
    head whose objectness says 'background' everywhere has a low joint score)."""
    view, c = _view(), 2
    g = torch.Generator().manual_seed(2)
    cls = [torch.randn(2, c, 4, 4, generator=g), torch.randn(2, c, 2, 2, generator=g)]
    obj = [torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 2, 2, generator=g)]
    got = view.sample_logits((cls, [None, None], obj))
    for image in range(2):
        for k in range(c):
            best = max((torch.sigmoid(x[image, k]) * torch.sigmoid(o[image, 0])).max().item()
                       for x, o in zip(cls, obj))
            assert got[image, k].item() == pytest.approx(math.log(best / (1 - best)), rel=1e-4)
    # A third output that is not one channel a prior (e.g. VFNet's refined boxes) is
    # not a score factor: the class scores are read alone.
    boxes = [torch.randn(2, 4, 4, 4), torch.randn(2, 4, 2, 2)]
    torch.testing.assert_close(view.sample_logits((cls, [None, None], boxes)),
                               view.sample_logits((cls, [None, None])))


def test_same_layouts_log_nothing_and_other_layouts_log_the_rule(tmp_path):
    from mmengine.logging import MMLogger
    from tiny_models import tiny_dense_detector
    one_anchor = tiny_dense_detector('FCOSHead', 12)
    teachers = [dict(name='fcos', config=one_anchor,
                     checkpoint=save_checkpoint(one_anchor, tmp_path / 'f.pth', 3)),
                dict(name='retina', config=tiny_retinanet(12),
                     checkpoint=save_checkpoint(tiny_retinanet(12), tmp_path / 'r.pth', 4))]
    logger = MMLogger.get_instance('layouts', log_file=str(tmp_path / 'log.txt'))
    model = det_distiller(teachers)  # a RetinaNet of 3 anchors per location
    inputs, samples = det_batch(model)
    model.loss(inputs, samples)
    assert (model.last_step.batch.logit_kd > 0).all()
    logger.handlers[-1].flush()
    log = (tmp_path / 'log.txt').read_text()
    assert "Head KD from teacher 'fcos', whose head has another layout" in log
    assert 'the best of 3 priors per location against the best of 1' in log
    assert "teacher 'retina'" not in log


def test_teachers_the_view_cannot_read_are_refused_with_the_reason(tmp_path):
    more_classes = tiny_retinanet(8, num_classes=5)
    with pytest.raises(ValueError, match='share the label set'):
        det_distiller([dict(config=more_classes,
                            checkpoint=save_checkpoint(more_classes, tmp_path / 'c.pth'))],
                      logit_kd=None)
    from benchmarks.families import FAMILIES, save_family_checkpoint
    detr = FAMILIES['DETR']
    with pytest.raises(ValueError, match='DETR-family detector, whose queries are not dense'):
        det_distiller([dict(name='detr', config=detr.config, cfg_options=detr.cfg_options,
                            checkpoint=save_family_checkpoint(detr, str(tmp_path), 0))])
    tood = FAMILIES['TOOD']
    with pytest.raises(ValueError, match='TOODHead gives class probabilities, not logits'):
        det_distiller([dict(name='tood', config=tood.config, cfg_options=tood.cfg_options,
                            checkpoint=save_family_checkpoint(tood, str(tmp_path), 0))])
    two_stage = tiny_faster_rcnn(8)
    with pytest.raises(ValueError, match="has no dense head 'bbox_head'"):
        det_distiller([dict(name='frcnn', config=two_stage,
                            checkpoint=save_checkpoint(two_stage, tmp_path / 'f.pth'))])
    assert DET_CLASSES != 5
