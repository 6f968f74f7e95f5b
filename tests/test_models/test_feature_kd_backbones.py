"""Feature KD on any backbone: the layer selectors, the layout of every feature kind,
the adapter picked by rank, and zoo families (DeiT, ViT tokens, Swin, ConvNeXt,
SegFormer) distilled with default feature KD under every weighting."""
import copy
from typing import NamedTuple, Optional

import pytest
import torch

from benchmarks.families import FAMILIES
from conftest import make_batch, save_checkpoint, tiny_classifier
from tiny_models import seg_batch

WEIGHTINGS = [
    dict(type='UniformWeighting'), dict(type='FixedWeighting', weights=[2, 1]),
    dict(type='EntropyWeighting'), dict(type='ConfidenceWeighting'),
    dict(type='MetaWeightNet', batch_size=2), dict(type='RLAgentWeighting', warmup_epochs=0)]


# ------------------------------------------------------------------ the parts
def test_layer_selectors_index_the_modules_outputs():
    from mmkd_ext.utils.recorder import OutputRecorder, parse_selector
    assert parse_selector('backbone') == ('backbone', ())
    assert parse_selector('backbone.layers.1[-1][0]') == ('backbone.layers.1', (-1, 0))
    with pytest.raises(ValueError, match='Bad layer selector'):
        parse_selector('backbone[last]')

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = torch.nn.Identity()

        def forward(self, x):
            return self.pair((x, (x + 1, x + 2)))

    net, x = Net(), torch.zeros(2, 3)
    recorder = OutputRecorder(net, ['pair', 'pair[-1]', 'pair[1][0]', 'pair[0][0]'])
    assert len(recorder._modules) == 1  # one hook for the module
    with recorder:
        net(x)
    outputs = recorder.last_outputs(['pair', 'pair[-1]', 'pair[1][0]'])
    assert outputs['pair[-1]'][1] is outputs['pair'][1][1]
    assert torch.equal(outputs['pair[1][0]'], x + 1)
    with pytest.raises(TypeError, match=r"'pair\[0\]' is a Tensor, not a tuple or list of "
                       r"outputs; select 'pair\[0\]' itself"):
        recorder.outputs  # a tensor's first dimension is the batch, never indexed


def test_features_of_every_rank_are_kept_channels_first():
    from mmkd_ext.models.task_views import BaseTaskView
    from mmkd_ext.models.utils import channels_first, pool_locations
    tokens = torch.arange(24.).reshape(2, 3, 4)  # [B, N, C]
    assert torch.equal(channels_first(tokens), tokens.transpose(1, 2))
    maps, vector = torch.randn(2, 4, 3, 3), torch.randn(2, 4)
    features = BaseTaskView.flatten_features([maps, ((vector, tokens), )])
    assert [f.shape for f in features] == [(2, 4, 3, 3), (2, 4), (2, 4, 3)]
    assert torch.allclose(pool_locations(features[2]), tokens.mean(1))
    assert torch.equal(pool_locations(vector), vector)
    with pytest.raises(ValueError, match=r'\[B, N, C\] tokens.*shape \[2, 1, 2, 3, 4\]'):
        channels_first(torch.zeros(2, 1, 2, 3, 4))


@pytest.mark.parametrize('shape', [(2, 4, 3, 3), (2, 4, 5), (2, 4)])
def test_feature_losses_take_every_kind(shape):
    from mmkd_ext.models.losses import ChannelWiseDivergence, FeatureMSE
    torch.manual_seed(0)
    s, t = torch.randn(shape), torch.randn(shape)
    assert torch.allclose(FeatureMSE()(s, t), (s - t).pow(2).flatten(1).mean(1))
    normalised = FeatureMSE(normalize=True)(s, t)
    assert normalised.shape == (2, ) and torch.isfinite(normalised).all()
    # A standardised feature is scale-free: a multiple of the teacher costs nothing.
    assert torch.allclose(FeatureMSE(normalize=True)(3 * t, t), torch.zeros(2), atol=1e-4)
    if len(shape) > 2:
        assert ChannelWiseDivergence()(s, t).shape == (2, )
    else:
        with pytest.raises(ValueError, match="single location.*type='FeatureMSE'"):
            ChannelWiseDivergence()(s, t)


@pytest.mark.parametrize('out_type,kind', [('raw', 'tokens'), ('cls_token', 'vector'),
                                           ('featmap', 'map'), ('avg_featmap', 'vector')])
def test_vit_out_types_give_one_feature_kind_each(out_type, kind):
    from mmpretrain.models import VisionTransformer

    from mmkd_ext.models.adapters import DEFAULT_ADAPTERS
    from mmkd_ext.models.task_views import BaseTaskView
    from mmkd_ext.models.utils import feature_kind
    arch = dict(FAMILIES['ViT'].cfg_options['backbone.arch'])
    arch.pop('_delete_', None)
    vit = VisionTransformer(arch=arch, img_size=32, patch_size=8, out_type=out_type)
    (feature, ) = BaseTaskView.flatten_features([vit(torch.zeros(2, 3, 32, 32))[-1]])
    assert feature_kind(feature) == kind and feature.shape[1] == arch['embed_dims']
    assert DEFAULT_ADAPTERS[kind] in ('ConvAdapter', 'TokenAdapter', 'LinearAdapter')


def test_the_default_layer_of_a_resnet_keeps_its_adapter_keys(two_teachers):
    """``'backbone[-1]'`` is the shipped ResNets' one output, so the feature and the
    adapters' state-dict keys are those of ``layers=['backbone']``."""
    from conftest import make_distiller
    model = make_distiller(two_teachers, feature_kd=dict())
    assert model.feature_distillation.student_layers == ('backbone[-1]', )
    assert [k for k in model.state_dict() if k.startswith('adapters.')] == [
        f'adapters.{k}.0.layers.{p}' for k in range(2) for p in (
            'conv.weight', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var',
            'bn.num_batches_tracked')]
    inputs, samples = make_batch(model)
    batch, _ = model.compute_kd_batch(inputs, samples)
    (stage, ) = model.student.backbone(inputs)  # what layers=['backbone'] records
    assert torch.allclose(batch.student_features[0], stage)


# ------------------------------------------------------------------ families
def _vit_arch(family, **changes):
    arch = dict(FAMILIES[family].cfg_options['backbone.arch'], **changes)
    return {'backbone.arch': arch}


class Case(NamedTuple):
    """A zoo family distilled from itself and a wider teacher, with default
    ``feature_kd`` unless given."""
    family: str  # the key of benchmarks.families.FAMILIES
    teacher: dict  # the wider teacher's overrides
    features: list  # the student's features: (kind, channels)
    feature_kd: dict = {}
    overrides: dict = {}  # of every model of the case
    config: Optional[str] = None  # instead of the family's zoo config
    probe_shape: Optional[tuple] = None  # instead of the family's


_WIDE_VIT = dict(_vit_arch('DeiT', embed_dims=48), **{'head.in_channels': 48})
CASES = {
    # The class token [B, C]: LinearAdapter.
    'DeiT': Case('DeiT', _WIDE_VIT, [('vector', 32)]),
    # DistilledVisionTransformer: the (cls, dist) pair, two vectors.
    'DeiT-distilled': Case('DeiT', _WIDE_VIT, [('vector', 32), ('vector', 32)],
                           config='mmpretrain::deit/deit-tiny-distilled_4xb256_in1k.py'),
    # The last encoder layer's tokens [B, 1 + 4*4, C] against a teacher of patch size 4
    # (1 + 8*8 tokens): TokenAdapter, the teacher's grid pooled to the student's.
    'ViT tokens': Case('ViT', {'backbone.patch_size': 4}, [('tokens', 32)],
                       feature_kd=dict(layers=['backbone.layers.1'])),
    # The last stage's map [B, C, 1, 1]: ConvAdapter.
    'Swin': Case('Swin', {'backbone.arch.embed_dims': 16, 'head.in_channels': 128},
                 [('map', 64)]),
    # The pooled output [B, C]: LinearAdapter.
    'ConvNeXt': Case('ConvNeXt', {'backbone.arch.channels': [8, 16, 32, 96],
                                  'head.in_channels': 96}, [('vector', 64)]),
    # MixVisionTransformer's last stage (it has no layer4): ConvAdapter.
    'SegFormer': Case('SegFormer', {'backbone.embed_dims': 16,
                                    'decode_head.in_channels': [16, 32, 80, 128]},
                      [('map', 64)], overrides={'data_preprocessor.size': (32, 64)},
                      probe_shape=(3, 32, 64)),
}


def _entry(case, overrides=None, checkpoint_dir=None, seed=0, name=None):
    """A student (no checkpoint) or teacher entry of a case (random weights saved)."""
    from mmkd_ext.utils.model_builder import build_model
    spec = CASES[case]
    family = FAMILIES[spec.family]
    config = spec.config or family.config
    options = copy.deepcopy(dict(family.cfg_options, **spec.overrides, **(overrides or {})))
    entry = dict(config=config, cfg_options=options)
    if checkpoint_dir is None:
        return entry
    torch.manual_seed(seed)
    model, _ = build_model(config, None, copy.deepcopy(options))
    path = str(checkpoint_dir / f'{name}.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return dict(entry, checkpoint=path, name=name)


@pytest.fixture(scope='module', params=sorted(CASES))
def family_distiller(request, tmp_path_factory):
    """``(case, distiller, batch of 2)``: the case's student and two teachers, one of
    them wider (or of another patch size), default ``feature_kd`` of the case."""
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    case = request.param
    spec, family = CASES[case], FAMILIES[CASES[case].family]
    folder = tmp_path_factory.mktemp(case.replace(' ', '_'))
    teachers = [_entry(case, {}, folder, 1, 'same'),
                _entry(case, spec.teacher, folder, 2, 'wider')]
    probe_shape = spec.probe_shape or family.probe_shape
    torch.manual_seed(0)
    model = MultiTeacherDistiller(
        student=_entry(case), teachers=teachers, feature_kd=spec.feature_kd,
        weighting=dict(type='MetaWeightNet', batch_size=2), probe_shape=probe_shape)
    model.train()
    if family.task == 'segmentation':
        inputs, samples = seg_batch(model, size=probe_shape[1:])
    else:
        inputs, samples = make_batch(model, 2)
    return case, model, (inputs, samples)


def _use_weighting(model, cfg):
    """Give the distiller another weighting, set up as the distiller sets up its own."""
    from mmkd_ext.registry import MODELS
    weighting = MODELS.build(dict(cfg, _scope_='mmkd_ext'))
    features = model.feature_distillation
    weighting.setup(len(model.teachers), features.num_classes, features.teacher_channels)
    model.weighting = weighting
    if cfg['type'] == 'RLAgentWeighting':
        weighting.begin_step(0.0, seed=0)
    return weighting


def test_each_family_records_its_features_and_adapters(family_distiller):
    from mmkd_ext.models.adapters import DEFAULT_ADAPTERS
    from mmkd_ext.models.utils import feature_kind
    case, model, (inputs, samples) = family_distiller
    expected = CASES[case].features
    batch, _ = model.compute_kd_batch(inputs, samples)
    assert [(feature_kind(f), f.shape[1]) for f in batch.student_features] == expected
    for adapters, teacher_features, adapted in zip(model.adapters, batch.teacher_features,
                                                   batch.adapted_features):
        assert [type(a).__name__ for a in adapters] == [DEFAULT_ADAPTERS[k] for k, _ in expected]
        assert [a.shape[:2] for a in adapted] == [t.shape[:2] for t in teacher_features]
    if case == 'ViT tokens':  # 1 + 4*4 tokens against 1 + 8*8: the teacher's grid pooled
        assert batch.teacher_features[1][0].shape == (2, 32, 65)
        assert batch.adapted_features[1][0].shape == (2, 32, 17)
    else:
        assert [a.shape for a in batch.adapted_features[1]] == [
            t.shape for t in batch.teacher_features[1]]
    assert batch.feature_kd.shape == (2, 2) and torch.isfinite(batch.feature_kd).all()


@pytest.mark.parametrize('weighting', WEIGHTINGS, ids=lambda w: w['type'])
def test_each_family_distils_with_every_weighting(family_distiller, weighting):
    """Two training steps of the student and adapters under the weighting."""
    _, model, (inputs, samples) = family_distiller
    _use_weighting(model, weighting)
    params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    optimizer = torch.optim.SGD(params, lr=1e-3)
    for _ in range(2):
        losses = model.loss(inputs, samples)
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total) and 'loss_feat' in losses
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert all(p.grad is not None for p in model.adapters.parameters())
    weights = model.last_step.weights
    assert weights.feature.shape == (2, 2) and torch.isfinite(weights.feature).all()
    if weighting['type'] == 'RLAgentWeighting':  # the agent learns from the step's state
        transition = dict(weights.transition.as_dict(), reward=torch.ones(2))
        with model.weighting.learning():
            model.weighting.agent_loss(transition).backward()
        assert model.weighting.agent.trunk[0].weight.grad is not None


@pytest.mark.parametrize('family_distiller', ['DeiT-distilled', 'ViT tokens', 'Swin'],
                         indirect=True)
def test_mmkd_gets_a_hypergradient_through_each_feature_kind(family_distiller):
    """MMKD's look-ahead through vectors (a distilled DeiT's two tokens), tokens and
    maps (Swin); the family matrix runs it for every family (the look-ahead runs the
    attention on torch's math backend: the fused kernel has no second derivative)."""
    from mmkd_ext.engine.hooks import MetaWeightHook
    _, model, (inputs, samples) = family_distiller
    _use_weighting(model, dict(type='MetaWeightNet', batch_size=2))
    params = [p for n, p in model.named_parameters() if not n.startswith('weighting.')]
    outer = MetaWeightHook().hypergradient(model, torch.optim.SGD(params, lr=0.01),
                                           inputs, samples)
    assert outer > 0
    grads = [p.grad for p in model.weighting.feature_net.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


# ------------------------------------------------------------------ refusals
def _vit_student_resnet_teacher(tmp_path, **feature_kd):
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    teacher = tiny_classifier(4)
    return MultiTeacherDistiller(
        student=_entry('DeiT'), feature_kd=feature_kd,
        teachers=[dict(config=teacher, checkpoint=save_checkpoint(teacher, tmp_path / 't.pth'))])


def test_what_cannot_be_distilled_is_refused_at_build_naming_the_fix(tmp_path):
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    # The DeiT's class token against a ResNet's map: features of two kinds.
    with pytest.raises(ValueError, match=r"student layer 'backbone\[-1\]' and teacher 't0' "
                       r'give a \[B, C\] vector and a \[B, C, H, W\] map.*out_type'):
        _vit_student_resnet_teacher(tmp_path)
    # A map adapter asked for vectors: never a raw conv2d error.
    with pytest.raises(ValueError, match=r'give \[B, C\] vector features, which ConvAdapter '
                       r"does not take.*dict\(type='LinearAdapter'\)"):
        MultiTeacherDistiller(student=_entry('DeiT'), feature_kd=dict(
            adapter=dict(type='ConvAdapter')), teachers=[_entry('DeiT', {}, tmp_path, 1, 't0')])
    # A layer whose output is a tensor is not indexed.
    with pytest.raises(TypeError, match=r"'head' is a Tensor.*select 'head' itself"):
        _vit_student_resnet_teacher(tmp_path, layers=['head[0]'])


def test_token_counts_without_a_grid_are_refused_at_build(tmp_path):
    """On a 24 x 32 probe: a 3 x 4 grid and a class token (13 tokens) against a 6 x 8
    grid and one (49 = 7 * 7 tokens): not a square grid, refused by the probe."""
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    student = _entry('ViT tokens')
    teacher = _entry('ViT tokens', {'backbone.patch_size': 4}, tmp_path, 1, 'fine')
    with pytest.raises(ValueError, match=r"the TokenAdapter of student layer "
                       r"'backbone.layers.1' and teacher 'fine' fails on the probe features "
                       r'\[1, 32, 13\] and \[1, 32, 49\].*student gives 13 tokens.*'
                       r'img_size / patch_size'):
        MultiTeacherDistiller(student=student, teachers=[teacher], probe_shape=(3, 24, 32),
                              feature_kd=dict(layers=['backbone.layers.1']))
