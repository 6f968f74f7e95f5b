"""The task-agnostic multi-teacher distiller."""
import copy
from contextlib import contextmanager
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.dist import get_backend, is_distributed
from mmengine.model import BaseModel, revert_sync_batchnorm

from mmkd_ext.registry import MODELS, TASK_VIEWS
from mmkd_ext.structures import KDBatch, KDStep, TeacherWeights
from mmkd_ext.utils.checkpoint import load_model_weights
from mmkd_ext.utils.model_builder import build_model
from mmkd_ext.utils.normalization import build_input_converter
from mmkd_ext.utils.recorder import OutputRecorder

#: Task view used when the config names none, by the student's library.
DEFAULT_TASK_VIEWS = {
    'mmpretrain': 'ClassificationView',
    'mmdet': 'DenseDetectionView',
    'mmseg': 'SegmentationView',
}


def _build_component(registry, cfg: dict):
    """Build a part of the distiller; unprefixed types are looked up in mmkd_ext."""
    cfg = copy.deepcopy(dict(cfg))
    cfg.setdefault('_scope_', 'mmkd_ext')
    return registry.build(cfg)


class ModelEntry(NamedTuple):
    """A teacher or student entry of the distiller's config."""
    config: Union[str, dict]
    checkpoint: Optional[str] = None
    name: Optional[str] = None
    cfg_options: Optional[dict] = None


def _split_model_spec(spec) -> ModelEntry:
    """A :class:`ModelEntry` from ``'path'``, a model dict or a
    ``dict(config=..., checkpoint=..., name=..., cfg_options=...)``."""
    if isinstance(spec, dict) and 'config' in spec:
        unknown = set(spec) - set(ModelEntry._fields)
        if unknown:
            raise KeyError(f'Unknown keys {sorted(unknown)} in a teacher/student entry; '
                           f'allowed: {", ".join(ModelEntry._fields)}.')
        return ModelEntry(**spec)
    return ModelEntry(spec)


@MODELS.register_module()
class MultiTeacherDistiller(BaseModel):
    """Distils one student from K frozen teachers with per-sample teacher weights.

    ``loss = student task losses + alpha * mean_i sum_k wL[i,k] KD_k(i)
    + beta * mean_i sum_k wF[i,k] FeatKD_k(i)``, where the weights come from the
    ``weighting`` module and the per-sample terms from the task view.

    Teachers are kept outside the module tree: they are not in the state dict, the
    optimizer or a DDP wrapper, never leave eval mode and get no gradient; they move
    with the distiller between devices. ``predict``/``tensor`` modes run the student
    alone, so validation and ``tools/test.py`` evaluate the student with its
    library's own metrics.

    Args:
        student: the student: a model dict, a config path (local or ``pkg::``), or
            ``dict(config=..., checkpoint=..., cfg_options=...)`` to start from
            trained weights or override parts of the config (``cfg_options`` keys
            are relative to the config's ``model``, e.g.
            ``{'backbone.init_cfg': None}``).
        teachers: K >= 1 entries ``dict(config=..., checkpoint=..., name=...,
            cfg_options=...)``.
        task_view: a task view config; by default the student's library picks it.
        logit_kd: the per-position logit KD loss, with ``weight`` (alpha) popped
            from it. ``None`` turns logit KD off.
        feature_kd: feature KD settings or None (off): ``layers`` (student module
            names; the task view's defaults if omitted), ``teacher_layers``
            (defaults to ``layers``), ``adapter`` (config of the adapter built per
            teacher and layer; channels are filled in), ``loss`` and ``weight`` (beta).
        weighting: the teacher-weighting module.
        probe_shape: ``(C, H, W)`` of the dummy input used once at construction to
            read feature channels and check teacher/student compatibility.
        check_finite: raise when a distillation term is NaN or infinite.
        data_preprocessor: the config's top-level ``data_preprocessor`` (MMEngine's
            runner passes it in). It is given to the student and teachers defined by
            an inline model dict without one; a model given as a config file uses
            that file's. The student's preprocessor is the distiller's.
    """

    def __init__(self,
                 student,
                 teachers: Sequence[dict],
                 task_view: Optional[dict] = None,
                 logit_kd: Optional[dict] = dict(type='KLDivergence', temperature=4.0, weight=1.0),
                 feature_kd: Optional[dict] = None,
                 weighting: dict = dict(type='UniformWeighting'),
                 probe_shape: Sequence[int] = (3, 32, 32),
                 check_finite: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not teachers:
            raise ValueError('MultiTeacherDistiller needs at least one teacher.')
        student_cfg, student_ckpt, _, student_options = _split_model_spec(student)
        self.student, student_scope = build_model(student_cfg, data_preprocessor,
                                                  student_options)
        if not (is_distributed() and get_backend() == 'nccl'):
            # SyncBN needs a process group of CUDA tensors: plain BN otherwise.
            self.student = revert_sync_batchnorm(self.student)
        if student_ckpt:
            load_model_weights(self.student, student_ckpt, 'student')
            self.student._is_init = True  # keep the loaded weights in init_weights()
        self.data_preprocessor = self.student.data_preprocessor

        self._build_teachers(teachers, data_preprocessor)

        if task_view is None and student_scope not in DEFAULT_TASK_VIEWS:
            raise ValueError(
                f'No default task view for {student_scope} students; set '
                f'task_view=dict(type=...) (registered: {sorted(TASK_VIEWS.module_dict)}).')
        view_cfg = copy.deepcopy(task_view) or dict(type=DEFAULT_TASK_VIEWS[student_scope])
        self.task_view = _build_component(TASK_VIEWS, view_cfg)
        self.task_view.bind(self.student)

        logit_kd = copy.deepcopy(logit_kd)
        self.logit_kd_weight = 0.0 if logit_kd is None else float(logit_kd.pop('weight', 1.0))
        self.logit_kd_loss = None if logit_kd is None else _build_component(MODELS, logit_kd)

        self.weighting = _build_component(MODELS, weighting)
        self.check_finite = check_finite
        self._setup_feature_kd(feature_kd, tuple(probe_shape))
        #: The last training step's batch and weights (detached), for hooks.
        self.last_step: Optional[KDStep] = None
        self._teacher_cache: Optional[dict] = None

    # ------------------------------------------------------------------ set-up
    @property
    def teachers(self) -> List[nn.Module]:
        """The frozen teacher models (not submodules of the distiller)."""
        return self._teachers

    def _build_teachers(self, teachers: Sequence[dict], data_preprocessor: Optional[dict]) -> None:
        """Build, load and freeze each teacher; an input converter per teacher."""
        self.teacher_names: List[str] = []
        self._teachers: List[nn.Module] = []  # deliberately not registered
        converters = []
        for idx, entry in enumerate(teachers):
            config, checkpoint, name, cfg_options = _split_model_spec(entry)
            name = name or f't{idx}'
            if 'loss' in name or name in self.teacher_names:
                raise ValueError(f"Teacher name {name!r} must be unique and must not "
                                 "contain 'loss' (log keys with 'loss' are summed).")
            source = config if isinstance(config, str) else config.get('type')
            owner = f'teacher {idx} ({name!r}, config {source})'
            teacher, _ = build_model(config, data_preprocessor, cfg_options)
            # Frozen and in eval mode, SyncBN is plain BN (and needs no process group).
            teacher = revert_sync_batchnorm(teacher)
            load_model_weights(teacher, checkpoint, owner)
            teacher.requires_grad_(False)
            teacher.eval()
            converters.append(build_input_converter(
                self.student.data_preprocessor, teacher.data_preprocessor, owner))
            self.teacher_names.append(name)
            self._teachers.append(teacher)
        self.input_converters = nn.ModuleList(converters)

    def _setup_feature_kd(self, feature_kd: Optional[dict], probe_shape: Tuple[int, ...]) -> None:
        """Build recorders and one adapter per (teacher, feature map); check heads."""
        feature_kd = copy.deepcopy(feature_kd)
        view = self.task_view
        self.feature_kd_weight = 0.0
        self.student_layers: Tuple[str, ...] = ()
        self.teacher_layers: Tuple[str, ...] = ()
        if feature_kd is not None:
            unknown = set(feature_kd) - {'layers', 'teacher_layers', 'adapter', 'loss', 'weight'}
            if unknown:
                raise KeyError(f'Unknown feature_kd keys {sorted(unknown)}; allowed: '
                               'layers, teacher_layers, adapter, loss, weight.')
            self.student_layers = tuple(feature_kd.get('layers') or view.default_feature_layers)
            self.teacher_layers = tuple(feature_kd.get('teacher_layers') or self.student_layers)
            self.feature_kd_weight = float(feature_kd.get('weight', 1.0))
            self.feature_kd_loss = _build_component(
                MODELS, feature_kd.get('loss', dict(type='FeatureMSE')))
        self._student_recorder = OutputRecorder(
            self.student, (view.head_module, ) + self.student_layers, 'student')
        self._teacher_recorders = [
            OutputRecorder(t, self.teacher_layers, f'teacher {n!r}')
            for t, n in zip(self._teachers, self.teacher_names)
        ]

        # One dry forward of every model on a dummy input: channel counts and checks.
        dummy = torch.zeros(1, *probe_shape)
        student_head, student_maps = self._probe(self.student, self._student_recorder,
                                                  dummy, self.student_layers)
        adapters, teacher_channels = [], []
        for name, teacher, recorder in zip(self.teacher_names, self._teachers,
                                           self._teacher_recorders):
            teacher_head, teacher_maps = self._probe(teacher, recorder, dummy,
                                                     self.teacher_layers)
            view.check_compatible(student_head, teacher_head, f'teacher {name!r}',
                                  head_kd=self.logit_kd_loss is not None)
            if len(student_maps) != len(teacher_maps):
                raise ValueError(
                    f'Feature KD: the student layers {self.student_layers} give '
                    f'{len(student_maps)} maps but teacher {name!r} layers '
                    f'{self.teacher_layers} give {len(teacher_maps)}.')
            per_layer = []  # one adapter per (teacher, feature map)
            for s_map, t_map in zip(student_maps, teacher_maps):
                cfg = copy.deepcopy(feature_kd.get('adapter', dict(type='ConvAdapter')))
                cfg.update(in_channels=s_map.shape[1], out_channels=t_map.shape[1])
                per_layer.append(_build_component(MODELS, cfg))
            adapters.append(nn.ModuleList(per_layer))
            if teacher_maps:
                teacher_channels.append(teacher_maps[-1].shape[1])
        self.adapters = nn.ModuleList(adapters)
        num_classes = view.sample_logits(student_head).shape[1]
        self.weighting.setup(len(self._teachers), num_classes, teacher_channels)

    @torch.no_grad()
    def _probe(self, model: nn.Module, recorder: OutputRecorder, dummy: torch.Tensor,
               layers: Tuple[str, ...]):
        was_training = model.training
        model.eval()
        try:
            with recorder:
                head_out = self.task_view.teacher_forward(model, dummy, None)
            # The head output is the view's; only the feature layers are recorded here.
            recorded = recorder.last_outputs(layers)
            maps = self.task_view.flatten_features([recorded[n] for n in layers])
        finally:
            model.train(was_training)
        return head_out, maps

    def _apply(self, fn, *args, **kwargs):
        """Move/cast the teachers with the distiller (``to``, ``cuda``, ``half``)."""
        super()._apply(fn, *args, **kwargs)
        for teacher in self._teachers:
            teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> 'MultiTeacherDistiller':
        """Set the student (and adapters) to ``mode``; teachers always stay in eval."""
        super().train(mode)
        for teacher in self._teachers:
            teacher.eval()
        return self

    @contextmanager
    def lookahead(self):
        """For passes that are not training steps (e.g. unrolled meta-learning steps):
        teachers run once per input batch and their outputs are reused, and
        :attr:`last_step` is left as the last real training step set it."""
        self._teacher_cache = {}
        try:
            yield
        finally:
            self._teacher_cache = None

    # ----------------------------------------------------------------- forward
    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.student(inputs, data_samples, mode=mode)

    def compute_kd_batch(self, inputs: torch.Tensor, data_samples: list,
                         requires: frozenset = frozenset()) -> Tuple[KDBatch, Dict]:
        """Run the student (with its task losses) and every teacher on one batch.

        Returns:
            ``(batch, student_losses)``: the per-sample quantities of
            :class:`KDBatch` and the student's own loss dict.
        """
        view = self.task_view
        with self._student_recorder:
            student_losses = self.student.loss(inputs, data_samples)
        recorded = self._student_recorder.outputs
        student_head = recorded[view.head_module]
        student_maps = view.flatten_features([recorded[n] for n in self.student_layers])

        teacher_heads, teacher_maps = self._run_teachers(inputs, data_samples)

        if self.logit_kd_loss is not None:
            logit_kd = torch.stack([
                view.logit_kd(self.logit_kd_loss, student_head, t, data_samples)
                for t in teacher_heads], dim=1)
        else:
            logit_kd = inputs.new_zeros(len(inputs), len(self._teachers))

        feature_kd, adapted = None, []
        if self.student_layers:
            per_teacher = []
            for adapters, t_maps in zip(self.adapters, teacher_maps):
                pairs = [a(s, t) for a, s, t in zip(adapters, student_maps, t_maps)]
                adapted.append([s for s, _ in pairs])
                per_teacher.append(torch.stack(
                    [self.feature_kd_loss(s, t) for s, t in pairs]).mean(0))
            feature_kd = torch.stack(per_teacher, dim=1)

        teacher_loss = student_loss = None
        with torch.no_grad():
            if 'teacher_loss' in requires:
                teacher_loss = torch.stack(
                    [view.sample_loss(t, data_samples) for t in teacher_heads], dim=1)
            if 'student_loss' in requires:
                student_loss = view.sample_loss(student_head, data_samples)

        batch = KDBatch(
            student_logits=view.sample_logits(student_head),
            teacher_logits=torch.stack([view.sample_logits(t) for t in teacher_heads]),
            logit_kd=logit_kd,
            feature_kd=feature_kd,
            teacher_loss=teacher_loss,
            student_loss=student_loss,
            student_features=student_maps,
            teacher_features=teacher_maps,
            adapted_features=adapted,
            data_samples=data_samples)
        return batch, student_losses

    def _run_teachers(self, inputs: torch.Tensor, data_samples: list) -> Tuple[list, list]:
        """Head outputs and feature maps of every teacher (no gradient)."""
        if self._teacher_cache is not None and id(inputs) in self._teacher_cache:
            cached_inputs, outputs = self._teacher_cache[id(inputs)]
            if cached_inputs is inputs:  # the same tensor object, not a reused id
                return outputs
        heads, maps = [], []
        with torch.no_grad():
            for teacher, convert, recorder in zip(self._teachers, self.input_converters,
                                                  self._teacher_recorders):
                with recorder:
                    heads.append(self.task_view.teacher_forward(
                        teacher, convert(inputs), data_samples))
                maps.append(self.task_view.flatten_features(
                    [recorder.outputs[n] for n in self.teacher_layers]))
        if self._teacher_cache is not None:
            self._teacher_cache[id(inputs)] = (inputs, (heads, maps))
        return heads, maps

    def per_sample_distill_losses(self, batch: KDBatch,
                                  weights: TeacherWeights) -> Dict[str, torch.Tensor]:
        """``{'loss_kd': [B], 'loss_feat': [B]}``: each sample's weighted logit term
        ``alpha * sum_k wL KD_k`` and feature term ``beta * sum_k wF FeatKD_k``
        (a key only when that term is on)."""
        losses = {}
        if self.logit_kd_loss is not None:
            losses['loss_kd'] = self.logit_kd_weight * (weights.logit * batch.logit_kd).sum(1)
        if batch.feature_kd is not None:
            losses['loss_feat'] = self.feature_kd_weight * (
                weights.feature * batch.feature_kd).sum(1)
        return losses

    def distill_losses(self, batch: KDBatch, weights: TeacherWeights) -> Dict[str, torch.Tensor]:
        """Weighted KD losses plus per-teacher log values (keys without 'loss')."""
        losses = {k: v.mean() for k, v in self.per_sample_distill_losses(batch, weights).items()}
        for k, name in enumerate(self.teacher_names):
            losses[f'{name}.w_logit'] = weights.logit[:, k].mean().detach()
            if self.logit_kd_loss is not None:
                losses[f'{name}.kd'] = batch.logit_kd[:, k].mean().detach()
            if batch.feature_kd is not None:
                losses[f'{name}.w_feat'] = weights.feature[:, k].mean().detach()
                losses[f'{name}.feat'] = batch.feature_kd[:, k].mean().detach()
        if self.check_finite:
            self._raise_if_not_finite(losses)
        return losses

    def _raise_if_not_finite(self, losses: Dict[str, torch.Tensor]) -> None:
        bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
        if bad:
            raise FloatingPointError(
                f'Distillation terms {bad} are not finite. Check the teachers\' '
                'checkpoints and inputs, lower the learning rate, or the KD weights; '
                'checkpoints already written are intact.')

    def loss(self, inputs: torch.Tensor, data_samples: list) -> Dict[str, torch.Tensor]:
        batch, student_losses = self.compute_kd_batch(
            inputs, data_samples, requires=self.weighting.requires)
        weights = self.weighting(batch)
        losses = {f'student.{k}': v for k, v in student_losses.items()}
        losses.update(self.distill_losses(batch, weights))
        if self.training and self._teacher_cache is None:
            self.last_step = KDStep(batch=batch.detached(), weights=weights.detached())
        return losses
