"""The task-agnostic multi-teacher distiller."""
import copy
import difflib
from contextlib import contextmanager, nullcontext
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_backend, get_world_size, is_distributed
from mmengine.model import BaseModel, revert_sync_batchnorm

from mmkd_ext.models.adapters import IdentityAdapter
from mmkd_ext.registry import MODELS, TASK_VIEWS
from mmkd_ext.structures import KDBatch, KDStep, TeacherWeights
from mmkd_ext.models.task_views.base import BaseTaskView
from mmkd_ext.utils.checkpoint import load_model_weights
from mmkd_ext.utils.model_builder import build_model
from mmkd_ext.utils.normalization import build_input_converter
from mmkd_ext.utils.recorder import OutputRecorder
from mmkd_ext.models.weighting.base import BaseWeighting

#: Task view used when the config names none, by the student's library.
DEFAULT_TASK_VIEWS = {
    'mmpretrain': 'ClassificationView',
    'mmdet': 'DenseDetectionView',
    'mmseg': 'SegmentationView',
}


def _build_component(registry, cfg: dict, key: str, kind: Union[type, str]):
    """Build a part of the distiller; unprefixed types are looked up in mmkd_ext.

    An unknown type is refused naming the config ``key``, the registered types of
    that ``kind`` (subclasses of a class, or classes of a package such as
    ``'mmkd_ext.models.losses'``) and the closest names.
    """
    cfg = copy.deepcopy(dict(cfg))
    cfg.setdefault('_scope_', 'mmkd_ext')
    type_name = cfg.get('type')
    if isinstance(type_name, str) and registry.get(type_name) is None:
        def of_kind(cls) -> bool:
            if isinstance(kind, str):
                return cls.__module__.startswith(kind + '.')
            return isinstance(cls, type) and issubclass(cls, kind)
        known = sorted(n for n, c in registry.module_dict.items() if of_kind(c))
        close = difflib.get_close_matches(type_name.split('.')[-1], known, n=3, cutoff=0.5)
        hint = f' Did you mean {" or ".join(close)}?' if close else ''
        raise KeyError(f'{key}: unknown type {type_name!r}.{hint} Registered: '
                       f'{", ".join(known)}.')
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
    library's own metrics; ``distill`` mode gives the weighted distillation losses
    alone (:meth:`distill_only`).

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
        teacher_channels_last: run the teachers in the channels-last memory format
            (faster convolutions on recent GPUs and oneDNN CPUs; same results up to
            float rounding).
        teacher_autocast: ``'bf16'`` or ``'fp16'`` to run the teachers under autocast
            in that precision (their outputs are cast back to float32 for the KD
            terms); ``None`` (default) runs them in the model's precision.
        check_finite: stop training (``FloatingPointError``) when a term of a step
            (the student's own losses, each teacher's KD terms and weights) is NaN or
            infinite, naming the term and the teacher; with
            :class:`~mmkd_ext.engine.hooks.SkipNonFiniteStepsHook` such steps are skipped.
            In distributed runs the per-teacher log values are averaged over ranks.
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
                 teacher_channels_last: bool = False,
                 teacher_autocast: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if teacher_autocast not in (None, 'bf16', 'fp16'):
            raise ValueError(f"model.teacher_autocast must be None, 'bf16' or 'fp16', got "
                             f'{teacher_autocast!r}.')
        self.teacher_channels_last = teacher_channels_last
        self.teacher_autocast = teacher_autocast
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

        self._build_teachers(teachers, data_preprocessor, student_scope)

        if task_view is None and student_scope not in DEFAULT_TASK_VIEWS:
            raise ValueError(
                f'No default task view for {student_scope} students; set '
                f'task_view=dict(type=...) (registered: {sorted(TASK_VIEWS.module_dict)}).')
        view_cfg = copy.deepcopy(task_view) or dict(type=DEFAULT_TASK_VIEWS[student_scope])
        self.task_view = _build_component(TASK_VIEWS, view_cfg, 'model.task_view', BaseTaskView)
        self.task_view.bind(self.student)

        logit_kd = copy.deepcopy(logit_kd)
        self.logit_kd_weight = 0.0 if logit_kd is None else float(logit_kd.pop('weight', 1.0))
        self.logit_kd_loss = None if logit_kd is None else _build_component(
            MODELS, logit_kd, 'model.logit_kd', 'mmkd_ext.models.losses')

        self.weighting = _build_component(MODELS, weighting, 'model.weighting', BaseWeighting)
        self.check_finite = check_finite
        #: Set by :class:`~mmkd_ext.engine.hooks.SkipNonFiniteStepsHook`: a non-finite step
        #: is flagged in :attr:`non_finite_terms` instead of raising.
        self.skip_non_finite = False
        #: Descriptions of the last training step's non-finite terms (empty if none).
        self.non_finite_terms: List[str] = []
        self._setup_feature_kd(feature_kd, tuple(probe_shape))
        #: The last training step's batch and weights (detached), for hooks.
        self.last_step: Optional[KDStep] = None
        self._teacher_cache: Optional[dict] = None

    # ------------------------------------------------------------------ set-up
    @property
    def teachers(self) -> List[nn.Module]:
        """The frozen teacher models (not submodules of the distiller)."""
        return self._teachers

    def _build_teachers(self, teachers: Sequence[dict], data_preprocessor: Optional[dict],
                        student_scope: str) -> None:
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
            teacher, scope = build_model(config, data_preprocessor, cfg_options)
            if scope != student_scope:
                raise ValueError(
                    f'model.teachers[{idx}]: {owner} is a model of {scope} '
                    f'({type(teacher).__name__}) but the student is a model of '
                    f'{student_scope} ({type(self.student).__name__}). Teachers must solve the '
                    f"student's task: use {student_scope} teachers.")
            # Frozen and in eval mode, SyncBN is plain BN (and needs no process group).
            teacher = revert_sync_batchnorm(teacher)
            load_model_weights(teacher, checkpoint, owner)
            teacher.requires_grad_(False)
            teacher.eval()
            if self.teacher_channels_last:
                teacher.to(memory_format=torch.channels_last)
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
                MODELS, feature_kd.get('loss', dict(type='FeatureMSE')), 'model.feature_kd.loss',
                'mmkd_ext.models.losses')
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
            for layer, s_map, t_map in zip(self.student_layers, student_maps, teacher_maps):
                cfg = copy.deepcopy(feature_kd.get('adapter', dict(type='ConvAdapter')))
                if cfg is None:
                    per_layer.append(IdentityAdapter.checked(
                        s_map, t_map, f"student layer {layer!r} and teacher {name!r}"))
                    continue
                cfg.update(in_channels=s_map.shape[1], out_channels=t_map.shape[1])
                per_layer.append(_build_component(MODELS, cfg, 'model.feature_kd.adapter',
                                                  'mmkd_ext.models.adapters'))
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
        if mode == 'distill':
            return self.distill_only(inputs, data_samples)
        return self.student(inputs, data_samples, mode=mode)

    def compute_kd_batch(self, inputs: torch.Tensor, data_samples: list,
                         requires: frozenset = frozenset(),
                         task_losses: bool = True) -> Tuple[KDBatch, Dict]:
        """Run the student (with its task losses) and every teacher on one batch.

        Args:
            task_losses: compute the student's own losses; False runs its forward up
                to the recorded head only (the returned loss dict is then empty).

        Returns:
            ``(batch, student_losses)``: the per-sample quantities of
            :class:`KDBatch` and the student's own loss dict.
        """
        view = self.task_view
        with self._student_recorder:
            if task_losses:
                student_losses = self.student.loss(inputs, data_samples)
            else:
                view.teacher_forward(self.student, inputs, data_samples)
                student_losses = {}
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
        scored = (teacher_heads if 'teacher_loss' in requires else []) + (
            [student_head] if 'student_loss' in requires else [])
        if scored:  # [B, K (+ 1)], in one call: a view shares the ground-truth targets
            with torch.no_grad():
                sample_losses = view.sample_losses(scored, data_samples)
            if 'teacher_loss' in requires:
                teacher_loss = sample_losses[:, :len(teacher_heads)]
            if 'student_loss' in requires:
                student_loss = sample_losses[:, -1]

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
        """Head outputs and feature maps of every teacher.

        The teachers run under ``torch.inference_mode`` (no autograd bookkeeping at
        all), optionally channels-last and under autocast; their outputs are then
        copied out of inference mode (autograd may save them for the backward of the
        KD terms) in float32.
        """
        if self._teacher_cache is not None and id(inputs) in self._teacher_cache:
            cached_inputs, outputs = self._teacher_cache[id(inputs)]
            if cached_inputs is inputs:  # the same tensor object, not a reused id
                return outputs
        heads, maps = [], []
        with torch.inference_mode(), self._teacher_precision(inputs.device.type):
            for teacher, convert, recorder in zip(self._teachers, self.input_converters,
                                                  self._teacher_recorders):
                teacher_inputs = convert(inputs)
                if self.teacher_channels_last:
                    teacher_inputs = teacher_inputs.contiguous(memory_format=torch.channels_last)
                with recorder:
                    heads.append(self.task_view.teacher_forward(
                        teacher, teacher_inputs, data_samples))
                maps.append(self.task_view.flatten_features(
                    [recorder.outputs[n] for n in self.teacher_layers]))
        outputs = _usable_by_autograd((heads, maps))
        if self._teacher_cache is not None:
            self._teacher_cache[id(inputs)] = (inputs, outputs)
        return outputs

    def _teacher_precision(self, device_type: str):
        """Autocast for the teachers' forward, or a no-op context."""
        if self.teacher_autocast is None:
            return nullcontext()
        dtype = torch.bfloat16 if self.teacher_autocast == 'bf16' else torch.float16
        return torch.autocast(device_type, dtype=dtype)

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
        return losses

    def loss(self, inputs: torch.Tensor, data_samples: list) -> Dict[str, torch.Tensor]:
        batch, student_losses = self.compute_kd_batch(
            inputs, data_samples, requires=self.weighting.requires)
        weights = self.weighting(batch)
        losses = {f'student.{k}': v for k, v in student_losses.items()}
        losses.update(self.distill_losses(batch, weights))
        if self._teacher_cache is None:  # a real step, not a look-ahead pass
            self._reduce_and_check(losses)
            if self.training:
                self.last_step = KDStep(batch=batch.detached(), weights=weights.detached())
            if self.non_finite_terms:  # only in skip mode: a loss that changes nothing
                return {'loss_skipped': self._zero_loss()}
        return losses

    def distill_only(self, inputs: torch.Tensor, data_samples: list) -> Dict[str, torch.Tensor]:
        """``forward(mode='distill')``: the weighted distillation losses alone
        (``loss_kd``, ``loss_feat``), without the student's task losses, log values
        or checks; for look-ahead passes (MMKD's unrolled steps on these terms)."""
        batch, _ = self.compute_kd_batch(inputs, data_samples, self.weighting.requires,
                                         task_losses=False)
        return {k: v.mean() for k, v in
                self.per_sample_distill_losses(batch, self.weighting(batch)).items()}

    def _zero_loss(self) -> torch.Tensor:
        """0, connected to every trainable parameter: the backward of a skipped step
        runs as usual (DDP reduces every bucket) and leaves zero gradients."""
        return sum((p * 0).sum() for p in self.parameters() if p.requires_grad)

    # ------------------------------------------------------- logs and faults
    def _reduce_and_check(self, losses: Dict[str, torch.Tensor]) -> None:
        """Average the per-teacher log values over ranks in place, and check that
        every term of the step is finite: one collective and one host sync.

        The reduced vector also carries each rank's sum of all terms, so a
        non-finite term on any rank stops (or skips) every rank at the same step.
        The host sync makes each step wait for every rank's forward in distributed
        runs; ``check_finite=False`` removes it (the reduction of the logs stays).
        """
        distributed = get_world_size() > 1 and self.training
        if not (self.check_finite or distributed):
            return
        log_keys = [k for k in losses if k.split('.', 1)[0] in self.teacher_names]
        values = torch.stack([losses[k].float() for k in log_keys] + [
            sum(_total(v).detach().float() for k, v in losses.items() if k not in log_keys)])
        if distributed:
            all_reduce(values, op='mean')
            losses.update(zip(log_keys, values.unbind()))
        if not self.check_finite:
            return
        self.non_finite_terms = []
        if bool(torch.isfinite(values).all()):
            return
        self.non_finite_terms = self._describe_non_finite(losses) or [
            'a term on another rank (see that rank\'s log)']
        if self.skip_non_finite:
            return
        raise FloatingPointError(
            f'Non-finite training terms: {"; ".join(self.non_finite_terms)}. Usual '
            'causes: a teacher checkpoint with NaN/inf weights or inputs it cannot handle, '
            'a learning rate or KD weight that is too large. Training stops here; the '
            'checkpoints already written are intact. To skip such steps instead (counted '
            "as skipped_steps in the log), add dict(type='mmkd_ext.SkipNonFiniteStepsHook') "
            'to custom_hooks.')

    def _describe_non_finite(self, losses: Dict[str, torch.Tensor]) -> List[str]:
        """``"logit KD of teacher 'a' (a.kd = nan)"``-style names of the bad terms,
        the weighted sums (which follow from the others) last."""
        what = {'kd': 'logit KD', 'feat': 'feature KD', 'w_logit': 'logit weight',
                'w_feat': 'feature weight'}
        found = []
        for key, value in losses.items():
            value = _total(value).detach().float()
            if bool(torch.isfinite(value)):
                continue
            head, _, tail = key.partition('.')
            if head in self.teacher_names:
                desc = f'{what.get(tail, tail)} of teacher {head!r}'
            elif head == 'student':
                desc = f"the student's own {tail}"
            else:
                desc = f'the weighted {key}'
            found.append((head not in self.teacher_names and head != 'student',
                          f'{desc} ({key} = {value.item()})'))
        return [desc for _, desc in sorted(found, key=lambda item: item[0])]


def _usable_by_autograd(value):
    """Copies of the inference-mode tensors in a (nested) list, tuple or dict;
    half-precision ones (from autocast) become float32."""
    if isinstance(value, (list, tuple)):
        return type(value)(_usable_by_autograd(v) for v in value)
    if isinstance(value, dict):
        return {k: _usable_by_autograd(v) for k, v in value.items()}
    if not isinstance(value, torch.Tensor):
        return value
    if value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    return value.clone()


def _total(value) -> torch.Tensor:
    """A loss entry as one tensor: the sum of a tensor or of a list of tensors
    (mmdet returns one loss per feature level)."""
    if isinstance(value, (list, tuple)):
        return torch.stack([v.sum() for v in value]).sum()
    return value.sum()
