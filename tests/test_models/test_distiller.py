"""MultiTeacherDistiller with real mmpretrain models: building, freezing, losses, errors."""
import os.path as osp

import pytest
import torch

from mmkd_ext.models.distillers import MultiTeacherDistiller
from mmkd_ext.models.losses import KLDivergence
from conftest import (PREPROCESSOR, STUDENT_CONFIG, TEACHER_CONFIGS, make_batch, make_distiller,
                      save_checkpoint, tiny_classifier)


def test_builds_from_inline_dict_local_file_and_package_path(tmp_path, teacher_dir):
    pkg = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'
    teachers = [
        dict(config=TEACHER_CONFIGS['resnet18_w16.pth'],
             checkpoint=osp.join(teacher_dir, 'resnet18_w16.pth')),
        dict(config=pkg, checkpoint=save_checkpoint(pkg, tmp_path / 'cifar.pth')),
    ]
    distiller = MultiTeacherDistiller(student=tiny_classifier(4), teachers=teachers,
                                      feature_kd=dict())
    assert distiller.teacher_names == ['t0', 't1']
    assert type(distiller.teachers[1].backbone).__name__ == 'ResNet_CIFAR'
    # Adapters map 32 student channels to 128 and 512 teacher channels.
    assert distiller.adapters[0][0].layers.conv.out_channels == 128
    assert distiller.adapters[1][0].layers.conv.out_channels == 512
    # The student may be a config path too.
    from_file = MultiTeacherDistiller(student=STUDENT_CONFIG, teachers=teachers[:1])
    assert from_file.student.backbone.base_channels == 8


def test_inputs_are_renormalised_for_a_teacher_with_other_preprocessing(tmp_path):
    other = dict(PREPROCESSOR, mean=[120.0, 110.0, 100.0], std=[50.0, 60.0, 70.0], to_rgb=False)
    teacher = tiny_classifier(4, preprocessor=other)
    distiller = make_distiller(
        [dict(config=teacher, checkpoint=save_checkpoint(teacher, tmp_path / 't.pth'))])
    raw = [torch.randint(0, 256, (3, 32, 32)).float() for _ in range(2)]
    for_student = distiller.data_preprocessor(dict(inputs=raw), False)['inputs']
    for_teacher = distiller.teachers[0].data_preprocessor(dict(inputs=raw), False)['inputs']
    assert not distiller.input_converters[0].identity
    assert torch.allclose(distiller.input_converters[0](for_student), for_teacher, atol=1e-4)


def test_unknown_teacher_preprocessing_is_refused():
    from mmengine.model import BaseDataPreprocessor
    from mmpretrain.models import ClsDataPreprocessor
    from mmkd_ext.utils.normalization import build_input_converter
    with pytest.raises(ValueError, match='cannot tell how data preprocessor BaseDataPre'):
        build_input_converter(ClsDataPreprocessor(mean=[0] * 3, std=[1] * 3),
                              BaseDataPreprocessor(), 'teacher 0')


def test_missing_or_unfitting_teacher_checkpoint_names_the_teacher(tmp_path, two_teachers):
    missing = dict(two_teachers[0], checkpoint=str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match=r"teacher 0 \('a'.*nope.pth"):
        make_distiller([missing])
    wrong = dict(two_teachers[1], checkpoint=two_teachers[0]['checkpoint'])
    with pytest.raises(KeyError, match=r"teacher 1 \('b'.*shape mismatches"):
        make_distiller([two_teachers[0], wrong])


def test_teachers_are_frozen_hidden_and_always_in_eval_mode(two_teachers):
    distiller = make_distiller(two_teachers)
    distiller.teachers[0].train()  # even if someone flips it
    distiller.train()
    distiller.train(True)
    for teacher in distiller.teachers:
        assert all(not m.training for m in teacher.modules())
        assert all(not p.requires_grad for p in teacher.parameters())
    assert distiller.student.training
    keys = distiller.state_dict().keys()
    assert any(k.startswith('student.') for k in keys)
    assert any(k.startswith('adapters.') for k in keys)
    assert not any('teacher' in k for k in keys)
    teacher_params = {id(p) for t in distiller.teachers for p in t.parameters()}
    assert not teacher_params & {id(p) for p in distiller.parameters()}
    distiller.to(torch.float64)  # teachers move with the distiller
    assert next(distiller.teachers[1].parameters()).dtype == torch.float64


def test_loss_terms_match_a_manual_computation(two_teachers):
    distiller = make_distiller(two_teachers, logit_kd=dict(type='KLDivergence',
                                                           temperature=3.0, weight=0.5))
    inputs, samples = make_batch(distiller)
    losses = distiller(inputs, samples, mode='loss')
    assert {'student.loss', 'loss_kd', 'loss_feat', 'a.w_logit', 'b.w_feat', 'a.kd'} <= set(losses)
    with torch.no_grad():
        s_logits = distiller.student(inputs, mode='tensor')
        kl = torch.stack([KLDivergence(3.0)(s_logits, t(inputs, mode='tensor'))
                          for t in distiller.teachers], dim=1)
    assert losses['loss_kd'].item() == pytest.approx(0.5 * (kl / 2).sum(1).mean().item(), rel=1e-4)
    assert losses['a.w_logit'].item() == pytest.approx(0.5)
    assert losses['loss_feat'].item() > 0
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert distiller.adapters[0][0].layers.conv.weight.grad is not None
    assert distiller.student.backbone.conv1.weight.grad is not None


def test_distill_mode_gives_the_weighted_terms_of_a_training_step_alone(two_teachers):
    distiller = make_distiller(two_teachers, weighting=dict(type='ConfidenceWeighting'))
    inputs, samples = make_batch(distiller)
    student_losses = []
    original_loss = distiller.student.loss
    distiller.student.loss = lambda *a, **k: student_losses.append(1) or original_loss(*a, **k)
    full = distiller(inputs, samples, mode='loss')
    assert len(student_losses) == 1
    distill = distiller(inputs, samples, mode='distill')
    assert len(student_losses) == 1  # the student's own losses are not computed
    assert set(distill) == {'loss_kd', 'loss_feat'}
    for key in distill:
        assert torch.allclose(distill[key], full[key])


def test_teachers_run_in_inference_mode_and_their_precision_options_keep_the_terms(
        two_teachers):
    modes = []
    reference = make_distiller(two_teachers, feature_kd=dict())
    reference.teachers[0].register_forward_pre_hook(
        lambda *a: modes.append(torch.is_inference_mode_enabled()))
    inputs, samples = make_batch(reference)
    torch.manual_seed(0)
    expected = reference.compute_kd_batch(inputs, samples)[0]
    assert modes == [True]
    fast = make_distiller(two_teachers, feature_kd=dict(), teacher_channels_last=True)
    fast.load_state_dict(reference.state_dict())
    assert fast.teachers[0].backbone.conv1.weight.is_contiguous(
        memory_format=torch.channels_last)
    torch.manual_seed(0)
    got = fast.compute_kd_batch(inputs, samples)[0]
    assert torch.allclose(got.logit_kd, expected.logit_kd, rtol=1e-4, atol=1e-6)
    assert torch.allclose(got.feature_kd, expected.feature_kd, rtol=1e-4, atol=1e-6)
    half = make_distiller(two_teachers, feature_kd=dict(), teacher_autocast='bf16')
    half.load_state_dict(reference.state_dict())
    torch.manual_seed(0)
    batch, student_losses = half.compute_kd_batch(inputs, samples)
    assert batch.logit_kd.dtype == torch.float32 and batch.teacher_logits.dtype == torch.float32
    assert torch.allclose(batch.logit_kd, expected.logit_kd, rtol=0.1, atol=1e-3)
    (batch.logit_kd.sum() + batch.feature_kd.sum()).backward()  # outputs usable by autograd
    with pytest.raises(ValueError, match="teacher_autocast must be None, 'bf16' or 'fp16'"):
        make_distiller(two_teachers, teacher_autocast='float16')


def test_confidence_weighting_receives_teacher_losses(two_teachers):
    distiller = make_distiller(two_teachers, weighting=dict(type='ConfidenceWeighting'))
    inputs, samples = make_batch(distiller)
    batch, _ = distiller.compute_kd_batch(inputs, samples, distiller.weighting.requires)
    assert batch.teacher_loss.shape == (4, 2)
    weights = distiller.weighting(batch)
    assert torch.allclose(weights.logit.sum(1), torch.ones(4))


def test_predict_and_tensor_modes_run_the_student_only(two_teachers):
    distiller = make_distiller(two_teachers)
    calls = []
    for t in distiller.teachers:
        t.register_forward_hook(lambda *a: calls.append(1))
    inputs, samples = make_batch(distiller)
    distiller.eval()
    preds = distiller(inputs, samples, mode='predict')
    assert len(preds) == 4 and preds[0].pred_score.shape == (10, )
    assert distiller(inputs, mode='tensor').shape == (4, 10)
    assert not calls


def test_configuration_errors_are_clear(tmp_path, two_teachers):
    with pytest.raises(KeyError, match=r"no submodule 'backbone.layer9'.*backbone.layer4"):
        make_distiller(two_teachers, feature_kd=dict(layers=['backbone.layer9']))
    five = tiny_classifier(4, num_classes=5)
    with pytest.raises(ValueError, match='predicts 5 classes but the student 10'):
        make_distiller([dict(config=five, checkpoint=save_checkpoint(five, tmp_path / '5.pth'))])
    with pytest.raises(ValueError, match='2 teachers'):
        make_distiller(two_teachers, weighting=dict(type='FixedWeighting', weights=[1, 1, 1]))
    with pytest.raises(ValueError, match='at least one teacher'):
        make_distiller([])
    with pytest.raises(KeyError, match='Unknown feature_kd keys'):
        make_distiller(two_teachers, feature_kd=dict(layer='backbone'))
    with pytest.raises(KeyError, match='several libraries|no installed library'):
        MultiTeacherDistiller(student=dict(type='NoSuchModel'), teachers=two_teachers)


def test_unknown_component_types_list_the_registered_ones(two_teachers):
    with pytest.raises(KeyError, match=r"model.weighting: unknown type 'Entropyy'. Did you "
                       r'mean EntropyWeighting\? Registered: ConfidenceWeighting, .*Uniform'):
        make_distiller(two_teachers, weighting=dict(type='Entropyy'))
    with pytest.raises(KeyError, match=r"model.logit_kd: unknown type 'KLDiv'. Did you mean "
                       r'KLDivergence.*Registered: ChannelWiseDivergence, FeatureMSE, '
                       r'KLDivergence, SigmoidKLDivergence\."$'):
        make_distiller(two_teachers, logit_kd=dict(type='KLDiv'))
    with pytest.raises(KeyError, match=r'model.task_view: .*ClassificationView'):
        make_distiller(two_teachers, task_view=dict(type='Classification'))
    with pytest.raises(KeyError, match=r'model.feature_kd.adapter: .*Registered: ConvAdapter, '
                       r'IdentityAdapter, LinearAdapter, TokenAdapter\."$'):
        make_distiller(two_teachers, feature_kd=dict(adapter=dict(type='ConvAdaptor')))


def test_feature_kd_without_an_adapter_needs_equal_shapes(tmp_path):
    same, wider = tiny_classifier(4), tiny_classifier(8)
    teachers = [dict(config=same, checkpoint=save_checkpoint(same, tmp_path / 'same.pth'))]
    for adapter in (None, dict(type='IdentityAdapter')):
        distiller = make_distiller(teachers, feature_kd=dict(adapter=adapter))
        assert type(distiller.adapters[0][0]).__name__ == 'IdentityAdapter'
    teachers = [dict(config=wider, checkpoint=save_checkpoint(wider, tmp_path / 'wide.pth'))]
    with pytest.raises(ValueError, match=r"adapter is None, but student layer "
                       r"'backbone\[-1\]' and teacher 't0' give maps of shapes "
                       r"\[32, 4, 4\] and \[64, 4, 4\].*"
                       r"adapter=dict\(type='ConvAdapter'\)"):
        make_distiller(teachers, feature_kd=dict(adapter=None))


def test_a_pool_of_teachers_of_another_task_only_is_refused(tmp_path):
    from tiny_models import tiny_retinanet, tiny_segmentor
    detector = tiny_retinanet()
    teacher = dict(config=detector, checkpoint=save_checkpoint(detector, tmp_path / 'det.pth'))
    with pytest.raises(ValueError, match=r"every teacher is a model of another library than "
                       r"the student's \(mmseg\).*Add at least one mmseg teacher"):
        MultiTeacherDistiller(student=tiny_segmentor(), teachers=[teacher],
                              feature_kd=dict(layers=['backbone[-1]']))


def nan_teacher_entry(tmp_path) -> dict:
    """A teacher entry whose checkpoint has a NaN classifier bias."""
    teacher = tiny_classifier(4)
    path = save_checkpoint(teacher, tmp_path / 'nan.pth')
    state = torch.load(path)
    state['state_dict']['head.fc.bias'][0] = float('nan')
    torch.save(state, path)
    return dict(config=teacher, checkpoint=path)


def test_non_finite_distillation_terms_raise(tmp_path):
    distiller = make_distiller([nan_teacher_entry(tmp_path)])
    inputs, samples = make_batch(distiller)
    with pytest.raises(FloatingPointError, match=r"Non-finite training terms: logit KD of "
                       r"teacher 't0' \(t0.kd = nan\)"):
        distiller(inputs, samples, mode='loss')


def test_cfg_options_override_parts_of_a_student_or_teacher_config(two_teachers):
    from conftest import tiny_classifier
    wider = dict(config=tiny_classifier(4), cfg_options={
        'backbone.base_channels': 6, 'backbone.stem_channels': 6, 'head.in_channels': 48})
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    distiller = MultiTeacherDistiller(student=wider, teachers=two_teachers[:1])
    assert distiller.student.head.fc.in_features == 48
    with pytest.raises(KeyError, match='cfg_options'):
        MultiTeacherDistiller(student=dict(config=tiny_classifier(4), options={}),
                              teachers=two_teachers[:1])
