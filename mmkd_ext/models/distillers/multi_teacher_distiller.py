"""The task-agnostic multi-teacher distiller."""
import copy
import dataclasses
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.dist import get_backend, is_distributed
from mmengine.model import BaseModel, revert_sync_batchnorm

from mmkd_ext.models.task_views import BaseTaskView, default_detection_view
from mmkd_ext.models.weighting.base import BaseWeighting
from mmkd_ext.registry import MODELS, TASK_VIEWS
from mmkd_ext.structures import KDBatch, KDStep, TeacherWeights
from mmkd_ext.utils.checkpoint import load_model_weights
from mmkd_ext.utils.model_builder import build_model
from .builder import build_component
from .feature_distillation import FeatureDistillation
from .model_entry import ModelEntry
from .step_health import StepHealth
from .teacher_pool import TeacherPool

#: Task view used when the config names none, by the student's library: a view's
#: name, or a function of the student model that returns one.
DEFAULT_TASK_VIEWS = {
    'mmpretrain': 'ClassificationView',
    'mmdet': default_detection_view,  # DETRView for DETRs, else DenseDetectionView
    'mmseg': 'SegmentationView',
}


@MODELS.register_module()
class MultiTeacherDistiller(BaseModel):
    """Distils one student from K frozen teachers with per-sample teacher weights.

    ``loss = student task losses + alpha * mean_i sum_k wL[i,k] KD_k(i)
    + beta * mean_i sum_k wF[i,k] FeatKD_k(i)``, where the weights ``[B, K]`` come
    from the ``weighting`` module and the per-sample terms ``[B, K]`` from the task
    view (:class:`~mmkd_ext.structures.KDBatch`).

    The parts: :class:`TeacherPool` builds, freezes and runs the teachers;
    :class:`FeatureDistillation` records the models' outputs, checks them once at
    construction, holds the adapters and gives the feature term; :class:`StepHealth`
    checks each training step. What is left here: the wiring, the forward modes and
    the losses.

    Teachers are kept outside the module tree: they are not in the state dict, the
    optimizer or a DDP wrapper, never leave eval mode and get no gradient; they move
    with the distiller between devices. ``predict``/``tensor`` modes run the student
    alone, so validation and ``tools/test.py`` evaluate the student with its
    library's own metrics; ``distill`` mode gives the weighted distillation losses
    alone (:meth:`distill_only`).

    Training hooks use the distiller through :class:`DistillerContract` only:
    ``last_step`` (:class:`~mmkd_ext.structures.KDStep`), ``step_health``
    (``.skipped``, ``.non_finite_terms``, ``.set_non_finite_policy(...)``),
    ``lookahead()`` / ``in_lookahead``, ``forward(mode='distill')`` and
    :meth:`per_sample_distill_losses`.

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
        TeacherPool.check_options(teachers, teacher_autocast)
        student_cfg, student_ckpt, _, student_options = ModelEntry.parse(student)
        self.student, student_scope = build_model(student_cfg, data_preprocessor,
                                                  student_options)
        if not (is_distributed() and get_backend() == 'nccl'):
            # SyncBN needs a process group of CUDA tensors: plain BN otherwise.
            self.student = revert_sync_batchnorm(self.student)
        if student_ckpt:
            load_model_weights(self.student, student_ckpt, 'student')
            self.student._is_init = True  # keep the loaded weights in init_weights()
        self.data_preprocessor = self.student.data_preprocessor

        self.teacher_pool = TeacherPool(teachers, data_preprocessor, self.student,
                                        student_scope, teacher_channels_last, teacher_autocast)
        self.input_converters = self.teacher_pool.input_converters

        if task_view is None and student_scope not in DEFAULT_TASK_VIEWS:
            raise ValueError(
                f'No default task view for {student_scope} students; set '
                f'task_view=dict(type=...) (registered: {sorted(TASK_VIEWS.module_dict)}).')
        view_cfg = copy.deepcopy(task_view)
        if not view_cfg:
            default = DEFAULT_TASK_VIEWS[student_scope]
            view_cfg = dict(type=default if isinstance(default, str) else default(self.student))
        self.task_view = build_component(TASK_VIEWS, view_cfg, 'model.task_view', BaseTaskView)
        self.task_view.bind(self.student)

        logit_kd = copy.deepcopy(logit_kd)
        self.logit_kd_weight = 0.0 if logit_kd is None else float(logit_kd.pop('weight', 1.0))
        self.logit_kd_loss = None if logit_kd is None else build_component(
            MODELS, logit_kd, 'model.logit_kd', 'mmkd_ext.models.losses')

        self.weighting = build_component(MODELS, weighting, 'model.weighting', BaseWeighting)
        #: The finite check of every training step and its skip policy.
        self.step_health = StepHealth(self.teacher_names, check_finite)
        self.feature_distillation = FeatureDistillation(
            feature_kd, self.task_view, self.student, self.teacher_pool, tuple(probe_shape),
            head_kd=self.logit_kd_loss is not None)
        self.feature_kd_loss = self.feature_distillation.loss
        self.adapters = self.feature_distillation.adapters
        self.weighting.setup(len(self.teacher_pool.task_indices),
                             self.feature_distillation.num_classes,
                             self.feature_distillation.teacher_channels)
        #: The last training step's batch and weights (detached), for hooks.
        self.last_step: Optional[KDStep] = None
        #: Keep each training step's inputs and teachers' outputs in
        #: :attr:`last_step` (set by hooks that reuse them, e.g. MMKD's quiz batches).
        self.retain_teacher_outputs = False
        self._in_lookahead = False

    # ------------------------------------------------------------------ set-up
    @property
    def teachers(self) -> List[nn.Module]:
        """The frozen teacher models (not submodules of the distiller)."""
        return self.teacher_pool.models

    @property
    def teacher_names(self) -> List[str]:
        return self.teacher_pool.names

    def _apply(self, fn, *args, **kwargs):
        """Move/cast the teachers with the distiller (``to``, ``cuda``, ``half``)."""
        super()._apply(fn, *args, **kwargs)
        self.teacher_pool.apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> 'MultiTeacherDistiller':
        """Set the student (and adapters) to ``mode``; teachers always stay in eval."""
        super().train(mode)
        self.teacher_pool.eval()
        return self

    @property
    def in_lookahead(self) -> bool:
        """True inside :meth:`lookahead`."""
        return self._in_lookahead

    @contextmanager
    def lookahead(self, teacher_outputs: Optional[tuple] = None):
        """For passes that are not training steps (e.g. unrolled meta-learning steps):
        teachers run once per input batch and their outputs are reused, and
        :attr:`last_step` and :attr:`step_health` are left as the last real training
        step set them. Only this context marks a pass as not a real step; nested,
        the inner one shares the outer one's teacher outputs.

        Args:
            teacher_outputs: ``(inputs, (heads, maps))``: the teachers' outputs on
                the tensor ``inputs``, already known (e.g. kept from a training
                step); passes on that very tensor use them instead of running the
                teachers.
        """
        previous = self._in_lookahead
        self._in_lookahead = True
        try:
            with self.teacher_pool.reusing_outputs(teacher_outputs):
                yield
        finally:
            self._in_lookahead = previous

    # ----------------------------------------------------------------- forward
    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'distill':
            return self.distill_only(inputs, data_samples)
        if mode == 'distill_terms':
            return self.distill_terms(inputs, data_samples)
        return self.student(inputs, data_samples, mode=mode)

    def compute_kd_batch(self, inputs: torch.Tensor, data_samples: list,
                         requires: frozenset = frozenset(),
                         task_losses: bool = True) -> Tuple[KDBatch, Dict]:
        """Run the student (with its task losses) and every teacher on one batch.

        Args:
            inputs: ``[B, C, H, W]``, the student's preprocessed batch.
            requires: the optional :class:`KDBatch` fields to fill
                (``'teacher_loss'``, ``'student_loss'``).
            task_losses: compute the student's own losses; False runs its forward up
                to the recorded head only (the returned loss dict is then empty).

        Returns:
            ``(batch, student_losses)``: the per-sample quantities of
            :class:`KDBatch` and the student's own loss dict.
        """
        view, features = self.task_view, self.feature_distillation
        with features.student_recorder:
            if task_losses:
                student_losses = self.student.loss(inputs, data_samples)
            else:
                view.teacher_forward(self.student, inputs, data_samples)
                student_losses = {}
        student_head, student_maps = features.student_outputs()
        pool_outputs = self.teacher_pool.run(inputs, data_samples)
        task, feature_only = self.teacher_pool.task_indices, self.teacher_pool.feature_indices
        teacher_heads = [pool_outputs[0][k] for k in task]
        teacher_maps = [pool_outputs[1][k] for k in task]

        if self.logit_kd_loss is not None:
            logit_kd = torch.stack([
                view.logit_kd(self.logit_kd_loss, student_head, t, data_samples)
                for t in teacher_heads], dim=1)
        else:
            logit_kd = inputs.new_zeros(len(inputs), len(teacher_heads))
        feature_kd, adapted = features.per_sample_term(student_maps, pool_outputs[1])
        feature_teacher_kd = None
        if feature_only:  # the weightings see the task teachers' terms only
            feature_teacher_kd = feature_kd[:, feature_only]
            feature_kd, adapted = feature_kd[:, task], [adapted[k] for k in task]

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
            data_samples=data_samples,
            feature_teacher_kd=feature_teacher_kd,
            teacher_outputs=pool_outputs)
        return batch, student_losses

    @property
    def feature_teacher_share(self) -> float:
        """The feature weight of each feature teacher, ``1 / K_all`` (K_all: every
        teacher); 0 when the pool has none. The weighting's feature weights of the
        task teachers are scaled by the rest, ``K_task / K_all``."""
        pool = self.teacher_pool
        return 1.0 / len(pool) if pool.feature_indices else 0.0

    @property
    def task_feature_share(self) -> float:
        """The factor of the weighting's feature weights of the task teachers,
        ``K_task / K_all`` (1 without feature teachers)."""
        return 1.0 - self.feature_teacher_share * len(self.teacher_pool.feature_indices)

    def per_sample_distill_losses(self, batch: KDBatch,
                                  weights: TeacherWeights) -> Dict[str, torch.Tensor]:
        """``{'loss_kd': [B], 'loss_feat': [B]}``: each sample's weighted logit term
        ``alpha * sum_k wL KD_k`` and feature term ``beta * sum_k wF FeatKD_k``
        (a key only when that term is on).

        With feature teachers (models of another library, no logits) the feature
        term is ``beta * (K_task / K_all * sum_k wF FeatKD_k + 1 / K_all * sum_j
        FeatKD_j)``: each feature teacher has the equal share ``1 / K_all`` of
        AVER, and the weighting shares the rest among the task teachers it sees."""
        losses = {}
        if self.logit_kd_loss is not None:
            losses['loss_kd'] = self.logit_kd_weight * (weights.logit * batch.logit_kd).sum(1)
        if batch.feature_kd is not None:
            term = (weights.feature * batch.feature_kd).sum(1)
            if batch.feature_teacher_kd is not None:
                term = self.task_feature_share * term + \
                    self.feature_teacher_share * batch.feature_teacher_kd.sum(1)
            losses['loss_feat'] = self.feature_distillation.weight * term
        return losses

    def distill_losses(self, batch: KDBatch, weights: TeacherWeights) -> Dict[str, torch.Tensor]:
        """Weighted KD losses plus per-teacher log values (keys without 'loss')."""
        losses = {k: v.mean() for k, v in self.per_sample_distill_losses(batch, weights).items()}
        pool, task_share = self.teacher_pool, self.task_feature_share
        for k, index in enumerate(pool.task_indices):
            name = pool.names[index]
            losses[f'{name}.w_logit'] = weights.logit[:, k].mean().detach()
            if self.logit_kd_loss is not None:
                losses[f'{name}.kd'] = batch.logit_kd[:, k].mean().detach()
            if batch.feature_kd is not None:
                losses[f'{name}.w_feat'] = task_share * weights.feature[:, k].mean().detach()
                losses[f'{name}.feat'] = batch.feature_kd[:, k].mean().detach()
        for j, index in enumerate(pool.feature_indices):
            name = pool.names[index]
            losses[f'{name}.w_feat'] = batch.feature_teacher_kd.new_tensor(
                self.feature_teacher_share)
            losses[f'{name}.feat'] = batch.feature_teacher_kd[:, j].mean().detach()
        return losses

    def loss(self, inputs: torch.Tensor, data_samples: list) -> Dict[str, torch.Tensor]:
        batch, student_losses = self.compute_kd_batch(
            inputs, data_samples, requires=self.weighting.requires)
        weights = self.weighting(batch)
        losses = {f'student.{k}': v for k, v in student_losses.items()}
        losses.update(self.distill_losses(batch, weights))
        if not self.in_lookahead:  # a real step
            self.step_health.reduce_and_check(losses, self.training)
            if self.training:
                self.last_step = self._kd_step(inputs, batch, weights)
            if self.step_health.skipped:  # a loss that changes nothing
                return {'loss_skipped': StepHealth.zero_loss(self)}
        return losses

    def _kd_step(self, inputs: torch.Tensor, batch: KDBatch,
                 weights: TeacherWeights) -> KDStep:
        """The detached record of a training step (with its inputs and teachers'
        outputs when :attr:`retain_teacher_outputs` is set)."""
        kept = dataclasses.replace(batch.detached(), teacher_outputs=None)
        if not self.retain_teacher_outputs:
            return KDStep(batch=kept, weights=weights.detached())
        return KDStep(batch=kept, weights=weights.detached(), inputs=inputs.detach(),
                      teacher_outputs=batch.teacher_outputs)

    def distill_terms(self, inputs: torch.Tensor,
                      data_samples: list) -> Tuple[KDBatch, TeacherWeights]:
        """``forward(mode='distill_terms')``: the batch's per-sample terms and the
        weighting's weights, without the student's task losses (its forward runs up
        to the recorded head); for look-ahead passes that need the terms apart
        (e.g. MMKD's finite-difference hypergradient)."""
        batch, _ = self.compute_kd_batch(inputs, data_samples, self.weighting.requires,
                                         task_losses=False)
        return batch, self.weighting(batch)

    def distill_only(self, inputs: torch.Tensor, data_samples: list) -> Dict[str, torch.Tensor]:
        """``forward(mode='distill')``: the weighted distillation losses alone
        (``loss_kd``, ``loss_feat``), without the student's task losses, log values
        or checks; for look-ahead passes (MMKD's unrolled steps on these terms, see
        :func:`mmkd_ext.engine.optimizers.lookahead.lookahead_task_loss`)."""
        batch, weights = self.distill_terms(inputs, data_samples)
        return {k: v.mean() for k, v in self.per_sample_distill_losses(batch, weights).items()}
