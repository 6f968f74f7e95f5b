"""Task view of mmdet detectors with dense (per-location) classification heads."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger

from mmkd_ext.models.losses.focal import sigmoid_focal_loss
from mmkd_ext.registry import TASK_VIEWS
from .base import BaseTaskView


def _gt_boxes(sample) -> torch.Tensor:
    boxes = sample.gt_instances.bboxes
    return boxes.tensor if hasattr(boxes, 'tensor') else boxes


def joint_logit(cls_logit: torch.Tensor, factor_logit: torch.Tensor) -> torch.Tensor:
    """``logit(sigmoid(a) * sigmoid(b))``, the logit of a class probability times a
    score factor's (YOLOX's objectness, FCOS's centerness), computed in log space:
    ``log p = log s(a) + log s(b)`` and ``log(1 - p) = log(s(-a) + s(a) s(-b))``.
    Shapes broadcast (e.g. ``[B, A, C, H, W]`` and ``[B, A, 1, H, W]``)."""
    log_p = F.logsigmoid(cls_logit) + F.logsigmoid(factor_logit)
    log_not_p = torch.logaddexp(F.logsigmoid(-cls_logit),
                                F.logsigmoid(cls_logit) + F.logsigmoid(-factor_logit))
    return log_p - log_not_p


def resample_level(scores: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Class scores ``[B, A, C, H, W]`` at the map size ``size`` ``(H', W')``:
    max-pooled over each target location's area when the map is at least as large in
    both dimensions (a coarse location keeps its area's best score; max commutes with
    the sigmoid, so logits are pooled), else resampled to the nearest cell (each
    target location takes the score of the cell containing its centre; a map larger
    in one dimension only is subsampled there)."""
    b, a, c, h, w = scores.shape
    if (h, w) == tuple(size):
        return scores
    flat = scores.reshape(b, a * c, h, w)
    if pools_down((h, w), size):
        flat = F.adaptive_max_pool2d(flat, size)
    else:
        flat = F.interpolate(flat, size=size, mode='nearest-exact')
    return flat.reshape(b, a, c, *size)


def pools_down(size: Tuple[int, int], target: Tuple[int, int]) -> bool:
    """Whether :func:`resample_level` max-pools a map of ``size`` to ``target`` (at
    least as large in both dimensions) rather than resampling it to the nearest cell."""
    return size[0] >= target[0] and size[1] >= target[1]


def match_levels(student_sizes: Sequence[Tuple[int, int]],
                 teacher_sizes: Sequence[Tuple[int, int]]) -> List[int]:
    """For each student level (map size ``(H, W)``), the index of the teacher level it
    is compared with: level by level when the two have the same map sizes; else the
    teacher level of the same size (= the same stride on the shared input), the one of
    the same index among several (small inputs give several 1x1 levels); else the one
    nearest in scale (the summed absolute logs of the height and width ratios), of two
    equally near the first (the finer, in mmdet's order)."""
    if list(student_sizes) == list(teacher_sizes):
        return list(range(len(student_sizes)))

    def distance(index, size):
        return sum(abs(math.log(t / s)) for t, s in zip(teacher_sizes[index], size))
    matches = []
    for index, size in enumerate(student_sizes):
        equal = [i for i, t in enumerate(teacher_sizes) if tuple(t) == tuple(size)]
        if equal:
            matches.append(min(equal, key=lambda i: (abs(i - index), i)))
        else:
            matches.append(min(range(len(teacher_sizes)), key=lambda i: distance(i, size)))
    return matches


def missed_class_images(logits: torch.Tensor, labels: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[B]`` bool: images with a ground-truth class whose per-image logit is below 0
    (probability 0.5) in ``logits`` ``[B, C]``; ``labels`` are the B images' label
    tensors."""
    hard = [bool(len(lab)) and bool((row[lab.to(row.device).long()] < 0).any())
            for row, lab in zip(logits, labels)]
    return torch.tensor(hard, device=logits.device)


def default_detection_view(student: nn.Module) -> str:
    """The task view of an mmdet student: ``DETRView`` for a DETR-family detector
    (``DetectionTransformer``), ``DenseDetectionView`` otherwise (one-stage dense
    detectors, and two-stage ones through their RPN; it refuses the rest)."""
    from mmdet.models.detectors import DetectionTransformer
    return 'DETRView' if isinstance(student, DetectionTransformer) else 'DenseDetectionView'


@TASK_VIEWS.register_module()
class DenseDetectionView(BaseTaskView):
    """Task view of mmdet detectors with sigmoid dense (per-location) heads: RetinaNet,
    FCOS, ATSS, GFL, RTMDet, YOLOX, ... and two-stage detectors through their RPN.

    **What a head output means.** The dense head's outputs are mmdet's
    ``predict_by_feat`` arguments: class scores, a list over levels of
    ``[B, A*C, H_l, W_l]`` (A priors per location, C classes), box predictions, and,
    for heads with exactly three outputs whose third has one channel a prior, score
    factors (YOLOX's objectness, FCOS's and ATSS's centerness) that mmdet multiplies
    into the class probability at test time (PAA takes the square root of that
    product at test time; the view uses the product). The view compares every head on that footing,
    the *joint class probability*: ``sigmoid(cls) * sigmoid(factor)`` where a head has
    score factors (:func:`joint_logit`), ``sigmoid(cls)`` otherwise (GFL's and RTMDet's
    scores are already IoU-aware). Outputs beyond these three are not read.

    **Heads of different layouts** (another number of priors per location, other
    strides) are distilled by one rule, at each student level:

    1. priors: where student and teacher have another number of priors per
       location, both are reduced to the best prior per location and class (max of
       the scores over the priors);
    2. levels (:func:`match_levels`): the teacher level of the same map size (= the
       same stride on the shared input) is used; a student level without one takes
       the teacher's level nearest in scale, max-pooled to a smaller map or resampled
       to the nearest cell of a larger one (:func:`resample_level`). Teacher levels
       matched by no student level are left out (RetinaNet's strides 64 and 128
       against RTMDet's 8/16/32).

    Teachers of the student's layout are compared prior by prior, level by level.
    How each teacher's levels are matched is logged at construction.

    The per-sample quantities:

    - per-image logits ``[B, C]``: each class's highest joint score over all levels,
      locations and priors;
    - logit KD ``[B]``: the KD loss (``SigmoidKLDivergence``) of the joint scores at
      every student location and prior (after the rule above), averaged per image
      over all of them, optionally weighted by the teacher's confidence there (its
      highest class probability);
    - per-image task loss ``[B]`` (a documented proxy for the detection loss): the
      sigmoid focal loss of the joint scores against centre-sampled targets (a
      location is positive for the classes of the ground-truth boxes containing its
      centre), summed and divided by the number of positives;
    - hard images (MMKD's buffer): some ground-truth class of the image scores
      below 0.5 everywhere;
    - features: every FPN level (the ``neck`` output) by default.

    Two-stage detectors (Faster R-CNN): the dense head is the RPN (``rpn_head``,
    one objectness class), so head KD distils the proposals' objectness and the
    per-image logits are ``[B, 1]``; feature KD covers every FPN level. The RoI
    head is not distilled.

    Teachers must have a sigmoid dense head under the same attribute as the
    student's, with the student's classes; others are refused at construction.

    Args:
        head (str, optional): the dense head's attribute name; by default
            ``bbox_head``, or ``rpn_head`` for a detector without a dense
            ``bbox_head``.
        weight_by_teacher_score (bool): weight the locations of the KD average by
            the teacher's highest class probability there.
        focal_alpha (float), focal_gamma (float): of the task-loss proxy.
    """
    head_module = 'bbox_head'
    default_feature_layers = ('neck', )

    def __init__(self, head: Optional[str] = None, weight_by_teacher_score: bool = False,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        self.head = head
        self.weight_by_teacher_score = weight_by_teacher_score
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.num_classes = None

    def bind(self, student: nn.Module) -> None:
        from mmdet.models.detectors import DetectionTransformer
        name = type(student).__name__
        if isinstance(student, DetectionTransformer):
            raise TypeError(f'{name} is a DETR-family detector, whose queries are not '
                            'dense locations: distil it with DETRView (the default).')
        if self.head is not None:
            self.head_module = self.head
        elif not hasattr(getattr(student, 'bbox_head', None), 'cls_out_channels') \
                and getattr(student, 'rpn_head', None) is not None:
            self.head_module = 'rpn_head'
        head = getattr(student, self.head_module, None)
        if head is None or not hasattr(head, 'cls_out_channels'):
            raise TypeError(
                f'{type(self).__name__} needs a detector with a dense {self.head_module!r} '
                '(one-stage: RetinaNet, FCOS, ATSS, GFL, RTMDet, YOLOX, ...; two-stage '
                f'through its rpn_head); {name} has none. DETR-family detectors have '
                'DETRView; for other models (e.g. MaskFormer/Mask2Former, whose mask '
                'queries no view reads) register a task view and set '
                'model.task_view=dict(type=...).')
        self._check_head(head, 'the student')
        self.num_classes = head.cls_out_channels

    def _check_head(self, head: nn.Module, owner: str) -> None:
        """Refuse softmax heads and heads whose forward gives probabilities (TOOD's
        scores are a geometric mean of probabilities), not the logits the view reads."""
        from mmdet.models.dense_heads import TOODHead
        if not getattr(head, 'use_sigmoid_cls', True):
            raise ValueError(f'{owner}: {type(head).__name__} classifies with a softmax; '
                             f'{type(self).__name__} supports sigmoid dense heads.')
        if isinstance(head, TOODHead):
            raise ValueError(f'{owner}: {type(head).__name__} gives class probabilities, '
                             f'not logits; {type(self).__name__} reads the class logits of '
                             'sigmoid dense heads (RetinaNet, FCOS, ATSS, GFL, RTMDet, '
                             'YOLOX, ...).')

    def check_teacher(self, teacher: nn.Module, teacher_name: str) -> None:
        """A teacher needs a sigmoid dense head of class logits under the student's
        head attribute, with the student's classes (its per-image logits join the
        others')."""
        from mmdet.models.detectors import DetectionTransformer
        if isinstance(teacher, DetectionTransformer):
            raise ValueError(
                f'{teacher_name} ({type(teacher).__name__}) is a DETR-family detector, '
                'whose queries are not dense locations: it can teach DETR-family students '
                '(DETRView), or this student as a feature teacher only if it were a model '
                'of another library. Use a dense detector teacher (RetinaNet, FCOS, GFL, '
                'RTMDet, YOLOX, ...).')
        head = getattr(teacher, self.head_module, None)
        if head is None or not hasattr(head, 'cls_out_channels'):
            raise ValueError(
                f'{teacher_name} ({type(teacher).__name__}) has no dense head '
                f'{self.head_module!r} like the student\'s: {type(self).__name__} reads '
                "every model's dense class scores (its per-image logits feed the "
                'weightings). Use a dense detector teacher (RetinaNet, FCOS, GFL, RTMDet, '
                'YOLOX, ...; two-stage ones for a two-stage student).')
        self._check_head(head, teacher_name)
        if head.cls_out_channels != self.num_classes:
            raise ValueError(
                f'{teacher_name} has {head.cls_out_channels} classes but the student '
                f'{self.num_classes}: teachers and student must share the label set.')

    def teacher_forward(self, teacher: nn.Module, inputs: torch.Tensor,
                        data_samples: list) -> Any:
        """The dense head's raw outputs (``mode='tensor'`` of a two-stage detector
        would run the RPN's post-processing and the RoI head instead)."""
        return getattr(teacher, self.head_module)(teacher.extract_feat(inputs))

    # -------------------------------------------------------------- helpers
    def _labels(self, sample, device) -> torch.Tensor:
        """Ground-truth labels in the head's classes (a single-class head, e.g. the
        RPN, sees every object as class 0)."""
        labels = sample.gt_instances.labels.to(device)
        return torch.zeros_like(labels) if self.num_classes == 1 else labels

    def _score_factors(self, head_out: Any) -> Optional[Sequence[torch.Tensor]]:
        """The head's score factors per level (``[B, A, H, W]``), or None: a third
        output of one channel a prior at every level."""
        if len(head_out) != 3:
            return None
        factors, c = head_out[2], self.num_classes
        if not isinstance(factors, (list, tuple)) or len(factors) != len(head_out[0]):
            return None
        if all(isinstance(f, torch.Tensor) and f.dim() == 4
               and f.shape[1] * c == s.shape[1] for f, s in zip(factors, head_out[0])):
            return factors
        return None

    def _levels(self, head_out: Any) -> List[torch.Tensor]:
        """Joint class logits per level, each ``[B, A, C, H, W]``."""
        c = self.num_classes
        factors = self._score_factors(head_out)
        levels = []
        for index, x in enumerate(head_out[0]):
            b, channels, h, w = x.shape
            x = x.reshape(b, channels // c, c, h, w)
            if factors is not None:
                x = joint_logit(x, factors[index].reshape(b, channels // c, 1, h, w))
            levels.append(x)
        return levels

    def _matched(self, student_out: Any, teacher_out: Any
                 ) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[int]]:
        """``(student levels, teacher levels, matches)``: both outputs' joint logits
        per level (:meth:`_levels`) and, per student level, the index of its teacher
        level (:func:`match_levels`)."""
        student_levels, teacher_levels = self._levels(student_out), self._levels(teacher_out)
        matches = match_levels([tuple(s.shape[-2:]) for s in student_levels],
                               [tuple(t.shape[-2:]) for t in teacher_levels])
        return student_levels, teacher_levels, matches

    def _aligned(self, student_out: Any, teacher_out: Any
                 ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per student level, the student's and the teacher's joint logits at the same
        locations, each ``[B, A, C, H*W]`` (the class docstring's rule)."""
        student_levels, teacher_levels, matches = self._matched(student_out, teacher_out)
        pairs = []
        for s, match in zip(student_levels, matches):
            t = teacher_levels[match]
            if s.shape[1] != t.shape[1]:  # priors per location differ: the best of each
                s, t = s.amax(1, keepdim=True), t.amax(1, keepdim=True)
            t = resample_level(t, tuple(s.shape[-2:]))
            pairs.append((s.flatten(3), t.flatten(3)))
        return pairs

    # -------------------------------------------------------------- the view
    def sample_logits(self, head_out: Any) -> torch.Tensor:
        per_level = [x.amax(dim=(1, 3, 4)) for x in self._levels(head_out)]  # [B, C] each
        return torch.stack(per_level).amax(0)

    def logit_kd(self, kd_loss: nn.Module, student_out: Any, teacher_out: Any,
                 data_samples: list) -> torch.Tensor:
        terms, weights = [], []
        for s, t in self._aligned(student_out, teacher_out):
            b, a, c, n = s.shape
            term = kd_loss(s.transpose(1, 2).reshape(b, c, a * n),
                           t.transpose(1, 2).reshape(b, c, a * n))  # [B, A*N]
            terms.append(term)
            if self.weight_by_teacher_score:
                weights.append(t.sigmoid().amax(2).reshape(b, a * n))
        term = torch.cat(terms, dim=1)
        if not self.weight_by_teacher_score:
            return term.mean(1)
        weight = torch.cat(weights, dim=1)
        return (term * weight).sum(1) / weight.sum(1).clamp_min(1e-6)

    def sample_loss(self, head_out: Any, data_samples: list) -> torch.Tensor:
        return self.sample_losses([head_out], data_samples)[:, 0]

    def sample_losses(self, head_outs: Sequence[Any], data_samples: list) -> torch.Tensor:
        """``[B, N]``: the focal-loss proxy of N head outputs; the centre targets of a
        feature-map size are built once for all of them."""
        targets: Dict[tuple, torch.Tensor] = {}
        return torch.stack([self._focal_proxy(out, data_samples, targets)
                            for out in head_outs], dim=1)

    def _focal_proxy(self, head_out: Any, data_samples: list,
                     targets: Dict[tuple, torch.Tensor]) -> torch.Tensor:
        """``[B]``: the summed sigmoid focal loss of one head output's joint scores
        against the centre targets (cached in ``targets`` by map size, dtype and
        device), over the number of positives."""
        pad_h, pad_w = data_samples[0].metainfo['batch_input_shape']
        total = positives = 0.0
        for level in self._levels(head_out):
            b, a, c, h, w = level.shape
            x = level.reshape(b, a, c, h * w)
            key = (h, w, x.dtype, x.device)
            if key not in targets:
                targets[key] = self._centre_targets(data_samples, h, w, pad_h / h,
                                                    pad_w / w, x)
            target = targets[key][:, None].expand_as(x)  # [B, A, C, H*W]
            focal = sigmoid_focal_loss(x, target, self.focal_alpha, self.focal_gamma)
            total = total + focal.sum(dim=(1, 2, 3))
            positives = positives + target.sum(dim=(1, 2, 3))
        return total / positives.clamp_min(1.0)

    def _centre_targets(self, data_samples: list, h: int, w: int, stride_y: float,
                        stride_x: float, like: torch.Tensor) -> torch.Tensor:
        """``[B, C, H*W]`` 0/1: a location is positive for the class of every ground
        truth box that contains its centre (all images' boxes at once)."""
        c = self.num_classes
        ys = (torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) * stride_y
        xs = (torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) * stride_x
        cy, cx = torch.meshgrid(ys, xs, indexing='ij')
        cy, cx = cy.reshape(1, -1), cx.reshape(1, -1)
        targets = like.new_zeros(len(data_samples) * c, h * w)
        per_image = [_gt_boxes(s).reshape(-1, 4) for s in data_samples]
        boxes = torch.cat(per_image).to(like)
        if len(boxes):
            labels = torch.cat([self._labels(s, like.device).long() for s in data_samples])
            image = torch.repeat_interleave(  # each box's image, counted on the host
                torch.arange(len(data_samples)),
                torch.tensor([len(b) for b in per_image])).to(like.device)
            inside = ((cx >= boxes[:, :1]) & (cx <= boxes[:, 2:3])
                      & (cy >= boxes[:, 1:2]) & (cy <= boxes[:, 3:4]))  # [M, H*W]
            targets.index_add_(0, image * c + labels, inside.to(like))
        return targets.reshape(len(data_samples), c, h * w).clamp_max(1.0)

    def hard_samples(self, student_logits: torch.Tensor, data_samples: list) -> torch.Tensor:
        return missed_class_images(
            student_logits, [self._labels(s, student_logits.device) for s in data_samples])

    def check_compatible(self, student_out: Any, teacher_out: Any, teacher_name: str,
                         head_kd: bool = True) -> None:
        """The class scores must be ``[B, A*C, H, W]`` maps; with head KD, how the
        teacher's levels meet the student's is logged where the layouts differ."""
        for owner, out in (('the student', student_out), (teacher_name, teacher_out)):
            if any(x.dim() != 4 or x.shape[1] % self.num_classes for x in out[0]):
                raise ValueError(
                    f'{owner} gives class scores of shapes '
                    f'{[tuple(x.shape[1:]) for x in out[0]]} per level, not '
                    f'[priors*{self.num_classes}, H, W] maps.')
        if head_kd:
            layout = self.alignment(student_out, teacher_out)
            if layout:
                MMLogger.get_current_instance().info(
                    f'Head KD from {teacher_name}, whose head has another layout (sizes at '
                    'the probe input): ' + '; '.join(layout) + '.')

    def alignment(self, student_out: Any, teacher_out: Any) -> List[str]:
        """How the teacher's head meets the student's, in words (empty when the
        layouts are equal): the prior reduction, and each student level whose
        teacher level is resampled or another one by position."""
        s_levels, t_levels, matches = self._matched(student_out, teacher_out)
        sizes = [tuple(t.shape[-2:]) for t in t_levels]
        words = []
        priors = sorted({(s.shape[1], t_levels[m].shape[1])
                         for s, m in zip(s_levels, matches) if s.shape[1] != t_levels[m].shape[1]})
        words += [f'the best of {a} priors per location against the best of {b}'
                  for a, b in priors]
        for index, (s, match) in enumerate(zip(s_levels, matches)):
            size, t_size = tuple(s.shape[-2:]), sizes[match]
            if t_size == size and match == index:
                continue
            how = '' if t_size == size else (
                ', max-pooled' if pools_down(t_size, size) else ', resampled to the nearest cell')
            words.append(f'student level {index} ({size[0]}x{size[1]}) from teacher level '
                         f'{match} ({t_size[0]}x{t_size[1]}){how}')
        unused = sorted(set(range(len(t_levels))) - set(matches))
        if unused:
            words.append(f'teacher levels {unused} unused')
        return words
