"""Segmentation through the KD core: SegmentationView with tiny mmseg segmentors."""
import pytest
import torch
import torch.nn.functional as F

from conftest import save_checkpoint

NUM_CLASSES = 19
IGNORE = 255


def tiny_segmentor(width=8, head='PSPHead', output_stride=8, norm='BN',
                   num_classes=NUM_CLASSES):
    """An mmseg EncoderDecoder: a ResNetV1c-18 of ``width`` base channels at output
    stride 8 (dilated last stages) or 16, a PSP / ASPP decode head and an FCN
    auxiliary head."""
    norm_cfg = dict(type=norm, requires_grad=True)
    strides, dilations = ((1, 2, 1, 1), (1, 1, 2, 4)) if output_stride == 8 else \
        ((1, 2, 2, 1), (1, 1, 1, 2))
    decode = dict(type=head, in_channels=8 * width, in_index=3, channels=16,
                  dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm_cfg,
                  align_corners=False,
                  loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
    decode.update(pool_scales=(1, 2, 3, 6)) if head == 'PSPHead' else \
        decode.update(dilations=(1, 6, 12, 18))
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=IGNORE, size=(64, 128)),
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=width, base_channels=width,
                      num_stages=4, out_indices=(0, 1, 2, 3), strides=strides,
                      dilations=dilations, norm_cfg=norm_cfg, norm_eval=False,
                      style='pytorch', contract_dilation=True),
        decode_head=decode,
        auxiliary_head=dict(type='FCNHead', in_channels=4 * width, in_index=2, channels=8,
                            num_convs=1, concat_input=False, dropout_ratio=0.1,
                            num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False,
                            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                             loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


@pytest.fixture
def seg_teachers(tmp_path):
    """A PSPNet at output stride 8 and a DeepLabV3 (ASPP) at output stride 16."""
    specs = [('psp', tiny_segmentor(12, 'PSPHead', 8)), ('aspp', tiny_segmentor(12, 'ASPPHead', 16))]
    return [dict(name=name, config=spec,
                 checkpoint=save_checkpoint(spec, tmp_path / f'{name}.pth', seed))
            for seed, (name, spec) in enumerate(specs)]


def seg_distiller(teachers, student=None, **kwargs):
    from mmkd_ext.distillers import MultiTeacherDistiller
    kwargs.setdefault('logit_kd', dict(type='KLDivergence', temperature=1.0, weight=1.0))
    kwargs.setdefault('feature_kd', dict(weight=1.0))
    torch.manual_seed(0)
    model = MultiTeacherDistiller(student=student or tiny_segmentor(8), teachers=teachers,
                                  probe_shape=(3, 64, 128), **kwargs)
    model.train()
    return model


def seg_batch(model, batch_size=2, size=(64, 128), seed=0):
    """Random images; labels: left half class 0 (road), right half class 10 (sky) or
    13 (car), a band of ignored pixels at the bottom."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    h, w = size
    images, samples = [], []
    for i in range(batch_size):
        images.append(torch.randint(0, 256, (3, h, w), generator=g).float())
        label = torch.zeros(1, h, w, dtype=torch.long)
        label[..., w // 2:] = 10 if i % 2 == 0 else 13
        label[:, h - 8:] = IGNORE
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
    return data['inputs'], data['data_samples']


def test_kd_batch_has_per_image_terms_for_every_teacher(seg_teachers):
    model = seg_distiller(seg_teachers)
    inputs, samples = seg_batch(model)
    batch, student_losses = model.compute_kd_batch(inputs, samples,
                                                  frozenset({'teacher_loss', 'student_loss'}))
    assert batch.student_logits.shape == (2, NUM_CLASSES)
    assert batch.teacher_logits.shape == (2, 2, NUM_CLASSES)
    assert batch.logit_kd.shape == batch.feature_kd.shape == batch.teacher_loss.shape == (2, 2)
    assert batch.student_loss.shape == (2, )
    assert len(batch.student_features) == 1  # the last backbone stage
    assert batch.student_features[0].shape == (2, 64, 8, 16)
    assert batch.teacher_features[1][0].shape == (2, 96, 4, 8)  # output stride 16
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(student_losses)
    losses = model.loss(inputs, samples)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert model.student.decode_head.conv_seg.weight.grad.abs().sum() > 0
    assert all(p.grad is None for t in model.teachers for p in t.parameters())


def test_pixel_kd_is_the_mean_kl_over_labelled_pixels_at_the_students_size(seg_teachers):
    """The stride-16 teacher's scores are resized to the student's stride-8 map; the
    ignored bottom rows do not count."""
    from mmkd_ext.losses import KLDivergence
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
    # Labels 64x128 -> 8x16 nearest: the last 8 label rows (ignored) are the last row.
    expected = kl[:, :7].mean(dim=(1, 2))
    assert torch.allclose(got, expected, rtol=1e-5)


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
    from mmkd_ext.losses import ChannelWiseDivergence
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


@pytest.mark.parametrize('weighting', [
    dict(type='UniformWeighting'), dict(type='EntropyWeighting'),
    dict(type='ConfidenceWeighting'), dict(type='RLAgentWeighting', warmup_epochs=0),
    dict(type='MetaWeightNet', batch_size=2)])
def test_every_weighting_runs_on_segmentation(weighting, seg_teachers):
    model = seg_distiller(seg_teachers, weighting=weighting)
    if weighting['type'] == 'RLAgentWeighting':
        model.weighting.begin_step(0.0, seed=0)
    inputs, samples = seg_batch(model)
    losses = model.loss(inputs, samples)
    weights = model.last_step.weights
    assert weights.logit.shape == (2, 2) and torch.isfinite(losses['loss_kd'])
    if weighting['type'] != 'EntropyWeighting':
        assert torch.allclose(weights.logit.sum(1), torch.ones(2), atol=1e-5)


def test_mmkd_hypergradient_runs_through_a_segmentor(seg_teachers):
    from mmkd_ext.hooks import MetaWeightHook
    model = seg_distiller(seg_teachers, weighting=dict(type='MetaWeightNet', batch_size=2))
    optimizer = torch.optim.AdamW([p for n, p in model.named_parameters()
                                   if not n.startswith('weighting.')], lr=1e-3)
    inputs, samples = seg_batch(model)
    outer = MetaWeightHook().hypergradient(model, optimizer, inputs, samples)
    assert outer > 0
    grads = [p.grad for p in model.weighting.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_hard_images_rank_an_absent_class_above_a_present_one():
    from mmkd_ext.task_views import SegmentationView
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
