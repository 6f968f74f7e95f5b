"""Feature KD of the distiller: recorders, the probe at build, adapters, the feature term."""
import copy
from typing import Any, Callable, List, Optional, Tuple

import torch
import torch.nn as nn

from mmkd_ext.models.adapters import DEFAULT_ADAPTERS, IdentityAdapter
from mmkd_ext.models.task_views.base import BaseTaskView
from mmkd_ext.models.utils import feature_kind
from mmkd_ext.registry import MODELS
from mmkd_ext.utils.recorder import OutputRecorder
from .builder import build_component
from .teacher_pool import TeacherPool

FEATURE_KD_KEYS = ('layers', 'teacher_layers', 'adapter', 'loss', 'weight')

#: What a feature of each kind looks like in the errors (as the backbone gives it).
_KIND_SHAPES = dict(map='[B, C, H, W] map', tokens='[B, N, C] tokens', vector='[B, C] vector')


class FeatureDistillation:
    """What the distiller compares besides the head outputs, and the checks at build.

    - The student's recorder keeps its head output (for the logit terms) and its
      feature layers; the teachers' layers are recorded by the :class:`TeacherPool`
      (bound here). Layers are selectors (:func:`~mmkd_ext.utils.recorder.parse_selector`):
      ``'backbone'`` gives every output of the backbone, ``'backbone[-1]'`` its last
      (the task views' default); a tuple or list output gives one feature per tensor.
    - Features are kept channels first (:mod:`mmkd_ext.models.utils.feature_layout`):
      ``[B, C, H, W]`` maps, ``[B, C, N]`` tokens (recorded ``[B, N, C]``), ``[B, C]``
      vectors.
    - At construction every model runs once on a dummy input ``[1, *probe_shape]``
      (:func:`probe`): the heads are checked for compatibility with the task view,
      and one adapter is built per (teacher, feature) and run once on the probe
      features, so that what cannot be distilled is refused before training. With
      ``feature_kd.adapter`` unset the adapter is that of the feature kind
      (:data:`~mmkd_ext.models.adapters.DEFAULT_ADAPTERS`: ``ConvAdapter`` for
      maps, ``TokenAdapter`` for tokens, ``LinearAdapter`` for vectors).
    - Every step, :meth:`per_sample_term` adapts the student's features to each
      teacher's and gives the per-sample feature term.

    Not an ``nn.Module``: the distiller registers :attr:`adapters` (state-dict keys
    ``adapters.<k>.<l>.*``, l counting the features) and :attr:`loss`
    (``feature_kd_loss``) as its own.

    Args:
        feature_kd: the distiller's ``feature_kd`` config or None (off).
        task_view: the bound task view.
        student: the student model.
        teachers: the teacher pool (its :meth:`TeacherPool.bind` is called here).
        probe_shape: ``(C, H, W)`` of the dummy input.
        head_kd: whether logit KD compares the head outputs directly.

    Attributes:
        student_layers, teacher_layers: the recorded layer selectors (empty when off).
        weight: beta, the weight of the feature term (0 when off).
        loss: the per-sample feature loss (None when off).
        adapters: K ``nn.ModuleList`` of L adapters.
        num_classes: C of the per-sample logits (read from the probe).
        teacher_channels: channels of each teacher's last feature (empty when off).
    """

    def __init__(self, feature_kd: Optional[dict], task_view: BaseTaskView,
                 student: nn.Module, teachers: TeacherPool, probe_shape: Tuple[int, ...],
                 head_kd: bool):
        feature_kd = copy.deepcopy(feature_kd)
        view = task_view
        self.weight = 0.0
        self.student_layers: Tuple[str, ...] = ()
        self.teacher_layers: Tuple[str, ...] = ()
        self.loss: Optional[nn.Module] = None
        if feature_kd is not None:
            unknown = set(feature_kd) - set(FEATURE_KD_KEYS)
            if unknown:
                raise KeyError(f'Unknown feature_kd keys {sorted(unknown)}; allowed: '
                               f'{", ".join(FEATURE_KD_KEYS)}.')
            self.student_layers = tuple(feature_kd.get('layers') or view.default_feature_layers)
            self.teacher_layers = tuple(feature_kd.get('teacher_layers') or self.student_layers)
            self.weight = float(feature_kd.get('weight', 1.0))
            self.loss = build_component(
                MODELS, feature_kd.get('loss', dict(type='FeatureMSE')), 'model.feature_kd.loss',
                'mmkd_ext.models.losses')
        self.task_view = view
        self.student_recorder = OutputRecorder(
            student, (view.head_module, ) + self.student_layers, 'student')
        teachers.bind(view, self.teacher_layers)

        feature_teachers = [teachers.names[k] for k in teachers.feature_indices]
        if feature_teachers and not self.student_layers:
            raise ValueError(
                f'Teachers {feature_teachers} are models of another library than the '
                "student's: a teacher of another task distils features only, and feature "
                'KD is off. Set model.feature_kd=dict(layers=[...], teacher_layers=[...]) '
                "(e.g. the student's backbone[-1] against the teacher's).")
        # One dry forward of every model on a dummy input: channel counts and checks.
        dummy = torch.zeros(1, *probe_shape)
        student_head, student_maps = probe(
            view, lambda x: view.teacher_forward(student, x, None), student,
            self.student_recorder, dummy, self.student_layers, 'the student')
        adapters, self.teacher_channels = [], []
        for k, (name, teacher, recorder) in enumerate(
                zip(teachers.names, teachers.models, teachers.recorders)):
            task_teacher = not teachers.feature_only[k]
            if task_teacher:
                view.check_teacher(teacher, f'teacher {name!r}')
            teacher_head, teacher_maps = probe(
                view, lambda x, k=k: teachers.forward(k, x, None), teacher, recorder, dummy,
                self.teacher_layers, f'teacher {name!r}')
            if task_teacher:
                view.check_compatible(student_head, teacher_head, f'teacher {name!r}',
                                      head_kd=head_kd)
            if len(student_maps) != len(teacher_maps):
                raise ValueError(
                    f'Feature KD: the student layers {self.student_layers} give '
                    f'{len(student_maps)} features but teacher {name!r} layers '
                    f'{self.teacher_layers} give {len(teacher_maps)}.')
            adapters.append(nn.ModuleList(  # one adapter per (teacher, feature)
                self._adapter(feature_kd, s_map, t_map, f'student {s_label} and teacher '
                              f"{name!r}{'' if t_label == s_label else ' ' + t_label}")
                for (s_label, s_map), (t_label, t_map) in zip(student_maps, teacher_maps)))
            if teacher_maps and task_teacher:
                self.teacher_channels.append(teacher_maps[-1][1].shape[1])
        self.adapters = nn.ModuleList(adapters)
        self.num_classes = view.sample_logits(student_head).shape[1]

    @staticmethod
    def _adapter(feature_kd: dict, student: torch.Tensor, teacher: torch.Tensor,
                 where: str) -> nn.Module:
        """The adapter of one (student, teacher) pair of probe features (channels
        first), built and run once on them: ``feature_kd.adapter`` if set (None:
        :class:`IdentityAdapter`), else the adapter of the feature kind."""
        kind, teacher_kind = feature_kind(student), feature_kind(teacher)
        if 'adapter' in feature_kd and feature_kd['adapter'] is None:
            return IdentityAdapter.checked(student, teacher, where)
        default = DEFAULT_ADAPTERS[kind]
        if kind != teacher_kind:
            raise ValueError(
                f'Feature KD: {where} give a {_KIND_SHAPES[kind]} and a '
                f'{_KIND_SHAPES[teacher_kind]}; the adapters map features of one kind. '
                'Select layers of the same kind (feature_kd.layers and teacher_layers, or '
                "the backbones' out_type, e.g. out_type='featmap' for a ViT's patch maps).")
        cfg = copy.deepcopy(feature_kd.get('adapter', dict(type=default)))
        cfg.update(in_channels=student.shape[1], out_channels=teacher.shape[1])
        adapter = build_component(MODELS, cfg, 'model.feature_kd.adapter',
                                  'mmkd_ext.models.adapters')
        kinds = getattr(adapter, 'kinds', None)
        if kinds is not None and kind not in kinds:
            raise ValueError(
                f'Feature KD: {where} give {_KIND_SHAPES[kind]} features, which '
                f'{type(adapter).__name__} does not take (it takes '
                f'{" or ".join(_KIND_SHAPES[k] for k in kinds)} features). Leave '
                'feature_kd.adapter unset to build the adapter of the feature kind, or set '
                f"feature_kd.adapter=dict(type='{default}').")
        adapter.eval()
        try:
            with torch.no_grad():
                aligned = adapter(student, teacher)
        except (ValueError, TypeError, RuntimeError) as err:
            raise ValueError(f'Feature KD: the {type(adapter).__name__} of {where} fails '
                             f'on the probe features {list(student.shape)} and '
                             f'{list(teacher.shape)} (channels first): {err}') from err
        finally:
            adapter.train()
        if aligned[0].shape != aligned[1].shape:
            raise ValueError(f'Feature KD: the {type(adapter).__name__} of {where} gives '
                             f'features of shapes {list(aligned[0].shape)} and '
                             f'{list(aligned[1].shape)}; the loss needs one shape.')
        return adapter

    @property
    def enabled(self) -> bool:
        return bool(self.student_layers)

    def student_outputs(self) -> Tuple[object, List[torch.Tensor]]:
        """``(head output, L features [B, C_s, *])`` of the student's last pass under
        :attr:`student_recorder`."""
        recorded = self.student_recorder.outputs
        maps = self.task_view.flatten_features([recorded[n] for n in self.student_layers])
        return recorded[self.task_view.head_module], maps

    def per_sample_term(self, student_maps: List[torch.Tensor],
                        teacher_maps: List[List[torch.Tensor]]
                        ) -> Tuple[Optional[torch.Tensor], List[List[torch.Tensor]]]:
        """The per-sample feature term of every teacher.

        Args:
            student_maps: L features ``[B, C_s, *]`` (channels first).
            teacher_maps: K lists of L features ``[B, C_t, *]``.

        Returns:
            ``(feature_kd, adapted)``: ``[B, K]``, the loss averaged over the L
            features (None when feature KD is off), and K lists of L adapted student
            features.
        """
        if not self.enabled:
            return None, []
        per_teacher, adapted = [], []
        for adapters, t_maps in zip(self.adapters, teacher_maps):
            pairs = [a(s, t) for a, s, t in zip(adapters, student_maps, t_maps)]
            adapted.append([s for s, _ in pairs])
            per_teacher.append(torch.stack([self.loss(s, t) for s, t in pairs]).mean(0))
        return torch.stack(per_teacher, dim=1), adapted


@torch.no_grad()
def probe(view: BaseTaskView, forward: Callable[[torch.Tensor], Any], model: nn.Module,
          recorder: OutputRecorder, dummy: torch.Tensor, layers: Tuple[str, ...],
          owner: str = 'the model') -> Tuple[object, List[Tuple[str, torch.Tensor]]]:
    """``forward(dummy)`` (the view's head output of ``model``, or None for a feature
    teacher) with ``model`` in eval mode on ``dummy`` ``[1, C, H, W]``, and the
    recorded features of ``layers`` (channels first, by ``view``), each with a label
    naming its layer (and its place among the layer's features, if several)."""
    was_training = model.training
    model.eval()
    try:
        with recorder:
            head_out = forward(dummy)
        # The head output is the view's; only the feature layers are recorded here.
        recorded = recorder.last_outputs(layers)
    finally:
        model.train(was_training)
    labelled = []
    for layer in layers:
        try:
            features = view.flatten_features([recorded[layer]])
        except (TypeError, ValueError) as err:
            raise ValueError(
                f'Feature KD: {owner} layer {layer!r}: {err} Select a layer that gives '
                "such features in feature_kd.layers (or teacher_layers), e.g. 'backbone[-1]' "
                "for the backbone's last output.") from err
        labelled += [(f'layer {layer!r}' if len(features) == 1 else
                      f'layer {layer!r} (feature {i} of {len(features)})', feature)
                     for i, feature in enumerate(features)]
    return head_out, labelled
