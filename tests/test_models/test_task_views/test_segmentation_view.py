"""Segmentation through the KD core: SegmentationView with tiny mmseg segmentors."""
import pytest
import torch
import torch.nn.functional as F

from conftest import save_checkpoint
from tiny_models import IGNORE
from tiny_models import SEG_CLASSES as NUM_CLASSES
from tiny_models import per_image_kd_batch, seg_batch, seg_distiller, tiny_segmentor


def test_kd_batch_has_per_image_terms_for_every_teacher(seg_teachers):
    model = seg_distiller(seg_teachers)
    inputs, samples = seg_batch(model)
    batch, student_losses = per_image_kd_batch(model, inputs, samples, NUM_CLASSES)
    assert len(batch.student_features) == 1  # the last backbone stage
    assert batch.student_features[0].shape == (2, 64, 8, 16)
    assert batch.teacher_features[1][0].shape == (2, 96, 4, 8)  # output stride 16
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(student_losses)
    losses = model.loss(inputs, samples)
    head = model.student.decode_head.conv_seg.weight
    kd_grad, = torch.autograd.grad(losses['loss_kd'], head, retain_graph=True)
    assert kd_grad.abs().sum() > 0  # the pixel KD term alone reaches the student's head
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None for t in model.teachers for p in t.parameters())


def test_pixel_kd_is_the_mean_kl_over_labelled_pixels_at_the_students_size(seg_teachers):
    """The stride-16 teacher's scores are resized to the student's stride-8 map; the
    ignored bottom rows do not count."""
    from mmkd_ext.models.losses import KLDivergence
    model = seg_distiller(seg_teachers)
    inputs, samples = seg_batch(model)
    view = model.task_view
    g = torch.Generator().manual_seed(1)
    student = torch.randn(2, NUM_CLASSES, 8, 16, generator=g)
    teacher = torch.randn(2, NUM_CLASSES, 4, 8, generator=g)
    got = view.logit_kd(KLDivergence(temperature=2.0), student, teacher, samples)
    up = F.interpolate(teacher, size=(8, 16), mode='bilinear', align_corners=False)
    p_t, log_p_s = (up / 2).softmax(1), (student / 2).log_softmax(1)
    kl = 4 * (p_t * (p_t.log() - log_p_s)).sum(1)  # [2, 8, 16]
    # Labels 64x128 -> 8x16 at each location's centre: the last row of the map samples
    # label row 60, among the ignored bottom 5.
    expected = kl[:, :7].mean(dim=(1, 2))
    assert torch.allclose(got, expected, rtol=1e-5)


def test_per_image_logits_give_the_mean_class_distribution():
    from mmkd_ext.models.task_views import SegmentationView
    scores = torch.randn(2, NUM_CLASSES, 8, 16, generator=torch.Generator().manual_seed(3))
    logits = SegmentationView().sample_logits(scores)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.allclose(logits.softmax(1), scores.softmax(1).mean(dim=(2, 3)), atol=1e-6)


def test_teacher_loss_is_the_pixel_cross_entropy_of_each_image(seg_teachers):
    model = seg_distiller(seg_teachers)
    inputs, samples = seg_batch(model)
    scores = torch.randn(2, NUM_CLASSES, 8, 16, generator=torch.Generator().manual_seed(2))
    got = model.task_view.sample_loss(scores, samples)
    for i, sample in enumerate(samples):
        up = F.interpolate(scores[i:i + 1], size=(64, 128), mode='bilinear', align_corners=False)
        expected = F.cross_entropy(up, sample.gt_sem_seg.data, ignore_index=IGNORE)
        assert torch.allclose(got[i], expected, rtol=1e-5)
    perfect = torch.full((2, NUM_CLASSES, 64, 128), -20.0)
    for i, sample in enumerate(samples):
        labels = sample.gt_sem_seg.data[0].clamp_max(NUM_CLASSES - 1)
        perfect[i].scatter_(0, labels[None], 20.0)
    assert (model.task_view.sample_loss(perfect, samples) < 1e-6).all()


def test_channel_wise_divergence_matches_its_formula():
    from mmkd_ext.models.losses import ChannelWiseDivergence
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    got = ChannelWiseDivergence(temperature=4.0)(s, t)
    expected = torch.zeros(2)
    for b in range(2):
        for c in range(3):
            p = (t[b, c].flatten() / 4).softmax(0)
            q = (s[b, c].flatten() / 4).softmax(0)
            expected[b] += 16 * (p * (p / q).log()).sum() / 3
    assert torch.allclose(got, expected, rtol=1e-5)
    assert torch.allclose(ChannelWiseDivergence()(t, t), torch.zeros(2), atol=1e-6)


def test_channel_wise_distillation_as_the_logit_term(seg_teachers):
    model = seg_distiller(seg_teachers, logit_kd=dict(type='ChannelWiseDivergence', weight=3.0))
    inputs, samples = seg_batch(model)
    losses = model.loss(inputs, samples)
    batch = model.last_step.batch
    assert batch.logit_kd.shape == (2, 2) and (batch.logit_kd > 0).all()
    assert torch.allclose(losses['loss_kd'], 3.0 * (batch.logit_kd * 0.5).sum(1).mean(),
                          rtol=1e-5)


def test_sync_bn_models_become_plain_bn_in_a_single_process(tmp_path):
    sync = tiny_segmentor(12, norm='SyncBN')
    teacher = [dict(name='sync', config=sync, checkpoint=save_checkpoint(
        tiny_segmentor(12), tmp_path / 's.pth'))]
    model = seg_distiller(teacher, student=tiny_segmentor(8, norm='SyncBN'))
    for net in (model.student, model.teachers[0]):
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
    inputs, samples = seg_batch(model)
    assert torch.isfinite(model.loss(inputs, samples)['loss_kd'])


def test_hard_images_rank_an_absent_class_above_a_present_one():
    from mmkd_ext.models.task_views import SegmentationView
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    view = SegmentationView(ignore_index=IGNORE)
    samples = []
    for classes in ([0, 2], [0, 2], [IGNORE, IGNORE]):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.tensor(classes).reshape(1, 1, 2))
        samples.append(sample)
    logits = torch.tensor([[3.0, 0.0, 2.0], [3.0, 2.5, 2.0], [1.0, 0.0, 0.0]])
    assert view.hard_samples(logits, samples).tolist() == [False, True, False]


def test_teachers_with_other_classes_are_refused(tmp_path):
    other = tiny_segmentor(8, num_classes=7)
    with pytest.raises(ValueError, match='share the label set'):
        seg_distiller([dict(config=other, checkpoint=save_checkpoint(other, tmp_path / 'o.pth'))])
