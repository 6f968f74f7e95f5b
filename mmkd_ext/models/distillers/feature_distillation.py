"""Feature KD of the distiller: recorders, the probe at build, adapters, the feature term."""
import copy
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from mmkd_ext.models.adapters import IdentityAdapter
from mmkd_ext.models.task_views.base import BaseTaskView
from mmkd_ext.registry import MODELS
from mmkd_ext.utils.recorder import OutputRecorder
from .builder import build_component
from .teacher_pool import TeacherPool

FEATURE_KD_KEYS = ('layers', 'teacher_layers', 'adapter', 'loss', 'weight')


class FeatureDistillation:
    """What the distiller compares besides the head outputs, and the checks at build.

    - The student's recorder keeps its head output (for the logit terms) and its
      feature layers; the teachers' layers are recorded by the :class:`TeacherPool`
      (bound here).
    - At construction every model runs once on a dummy input ``[1, *probe_shape]``
      (:func:`probe`): the heads are checked for compatibility with the task view,
      and the maps' channel counts size one adapter per (teacher, feature map).
    - Every step, :meth:`per_sample_term` adapts the student's maps to each teacher's
      and gives the per-sample feature term.

    Not an ``nn.Module``: the distiller registers :attr:`adapters` (state-dict keys
    ``adapters.<k>.<l>.*``) and :attr:`loss` (``feature_kd_loss``) as its own.

    Args:
        feature_kd: the distiller's ``feature_kd`` config or None (off).
        task_view: the bound task view.
        student: the student model.
        teachers: the teacher pool (its :meth:`TeacherPool.bind` is called here).
        probe_shape: ``(C, H, W)`` of the dummy input.
        head_kd: whether logit KD compares the head outputs directly.

    Attributes:
        student_layers, teacher_layers: the recorded module names (empty when off).
        weight: beta, the weight of the feature term (0 when off).
        loss: the per-sample feature loss (None when off).
        adapters: K ``nn.ModuleList`` of L adapters.
        num_classes: C of the per-sample logits (read from the probe).
        teacher_channels: channels of each teacher's last map (empty when off).
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

        # One dry forward of every model on a dummy input: channel counts and checks.
        dummy = torch.zeros(1, *probe_shape)
        student_head, student_maps = probe(view, student, self.student_recorder, dummy,
                                           self.student_layers)
        adapters, self.teacher_channels = [], []
        for name, teacher, recorder in zip(teachers.names, teachers.models, teachers.recorders):
            teacher_head, teacher_maps = probe(view, teacher, recorder, dummy,
                                               self.teacher_layers)
            view.check_compatible(student_head, teacher_head, f'teacher {name!r}',
                                  head_kd=head_kd)
            if len(student_maps) != len(teacher_maps):
                raise ValueError(
                    f'Feature KD: the student layers {self.student_layers} give '
                    f'{len(student_maps)} maps but teacher {name!r} layers '
                    f'{self.teacher_layers} give {len(teacher_maps)}.')
            per_layer = []  # one adapter per (teacher, feature map)
            for layer, s_map, t_map in zip(self.student_layers, student_maps, teacher_maps):
                cfg = copy.deepcopy(feature_kd.get('adapter', dict(type='ConvAdapter')))
                if cfg is None:
                    per_layer.append(IdentityAdapter.checked(
                        s_map, t_map, f"student layer {layer!r} and teacher {name!r}"))
                    continue
                cfg.update(in_channels=s_map.shape[1], out_channels=t_map.shape[1])
                per_layer.append(build_component(MODELS, cfg, 'model.feature_kd.adapter',
                                                 'mmkd_ext.models.adapters'))
            adapters.append(nn.ModuleList(per_layer))
            if teacher_maps:
                self.teacher_channels.append(teacher_maps[-1].shape[1])
        self.adapters = nn.ModuleList(adapters)
        self.num_classes = view.sample_logits(student_head).shape[1]

    @property
    def enabled(self) -> bool:
        return bool(self.student_layers)

    def student_outputs(self) -> Tuple[object, List[torch.Tensor]]:
        """``(head output, L maps [B, C_s, H, W])`` of the student's last pass under
        :attr:`student_recorder`."""
        recorded = self.student_recorder.outputs
        maps = self.task_view.flatten_features([recorded[n] for n in self.student_layers])
        return recorded[self.task_view.head_module], maps

    def per_sample_term(self, student_maps: List[torch.Tensor],
                        teacher_maps: List[List[torch.Tensor]]
                        ) -> Tuple[Optional[torch.Tensor], List[List[torch.Tensor]]]:
        """The per-sample feature term of every teacher.

        Args:
            student_maps: L maps ``[B, C_s, H, W]``.
            teacher_maps: K lists of L maps ``[B, C_t, H_t, W_t]``.

        Returns:
            ``(feature_kd, adapted)``: ``[B, K]``, the loss averaged over the L layers
            (None when feature KD is off), and K lists of L adapted student maps.
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
def probe(view: BaseTaskView, model: nn.Module, recorder: OutputRecorder,
          dummy: torch.Tensor, layers: Tuple[str, ...]):
    """``(head output, maps)`` of ``model`` in eval mode on ``dummy`` ``[1, C, H, W]``:
    the view's head output and the recorded maps of ``layers``."""
    was_training = model.training
    model.eval()
    try:
        with recorder:
            head_out = view.teacher_forward(model, dummy, None)
        # The head output is the view's; only the feature layers are recorded here.
        recorded = recorder.last_outputs(layers)
        maps = view.flatten_features([recorded[n] for n in layers])
    finally:
        model.train(was_training)
    return head_out, maps
