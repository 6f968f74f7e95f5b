"""Task view of mmdet detectors with dense (per-location) classification heads."""
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from mmkd_ext.models.losses.focal import sigmoid_focal_loss
from mmkd_ext.registry import TASK_VIEWS
from .base import BaseTaskView


def _gt_boxes(sample) -> torch.Tensor:
    boxes = sample.gt_instances.bboxes
    return boxes.tensor if hasattr(boxes, 'tensor') else boxes


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
    """Task view of one-stage mmdet detectors with sigmoid dense heads (RetinaNet,
    FCOS, ATSS, GFL): the head's first output, a list over FPN levels of class
    scores ``[B, A*C, H_l, W_l]`` (A anchors per location, C classes).

    - per-image logits ``[B, C]``: each class's highest score over all levels,
      locations and anchors;
    - logit KD ``[B]``: the KD loss (``SigmoidKLDivergence`` for sigmoid heads) at
      every location and anchor, averaged per image over all of them, optionally
      weighted by the teacher's confidence there (its highest class probability);
    - per-image task loss ``[B]`` (a documented proxy for the detection loss): the
      sigmoid focal loss of the class scores against centre-sampled targets (a
      location is positive for the classes of the ground-truth boxes containing
      its centre), summed and divided by the number of positives;
    - hard images (MMKD's buffer): some ground-truth class of the image scores
      below 0.5 everywhere;
    - features: every FPN level (the ``neck`` output) by default.

    Two-stage detectors (Faster R-CNN): the dense head is the RPN (``rpn_head``,
    one objectness class), so head KD distils the proposals' objectness and the
    per-image logits are ``[B, 1]``; feature KD covers every FPN level. The RoI
    head is not distilled.

    Head KD needs teacher and student heads with the same levels, anchors and
    classes; otherwise the distiller stops with an error at construction.

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
                '(one-stage: RetinaNet, FCOS, ATSS, GFL, ...; two-stage through its '
                f'rpn_head); {name} has none. DETR-family detectors have DETRView; for '
                'other models (e.g. MaskFormer/Mask2Former, whose mask queries no view '
                'reads) register a task view and set model.task_view=dict(type=...).')
        if not getattr(head, 'use_sigmoid_cls', True):
            raise ValueError(f'{type(head).__name__} classifies with a softmax; '
                             f'{type(self).__name__} supports sigmoid dense heads.')
        self.num_classes = head.cls_out_channels

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

    def _levels(self, head_out: Any) -> List[torch.Tensor]:
        """Class scores per level, each ``[B, A, C, H*W]``."""
        levels = head_out[0]
        c = self.num_classes
        return [x.reshape(x.shape[0], x.shape[1] // c, c, -1) for x in levels]

    # -------------------------------------------------------------- the view
    def sample_logits(self, head_out: Any) -> torch.Tensor:
        per_level = [x.amax(dim=(1, 3)) for x in self._levels(head_out)]  # [B, C] each
        return torch.stack(per_level).amax(0)

    def logit_kd(self, kd_loss: nn.Module, student_out: Any, teacher_out: Any,
                 data_samples: list) -> torch.Tensor:
        terms, weights = [], []
        for s, t in zip(self._levels(student_out), self._levels(teacher_out)):
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
        """``[B]``: the summed sigmoid focal loss of one head output against the centre
        targets (cached in ``targets`` by map size, dtype and device), over the number
        of positives."""
        pad_h, pad_w = data_samples[0].metainfo['batch_input_shape']
        c = self.num_classes
        total = positives = 0.0
        for raw in head_out[0]:
            b, channels, h, w = raw.shape
            x = raw.reshape(b, channels // c, c, h * w)
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
        s_shapes = [tuple(x.shape[1:]) for x in student_out[0]]
        t_shapes = [tuple(x.shape[1:]) for x in teacher_out[0]]
        if head_kd and s_shapes != t_shapes:
            raise ValueError(
                f'Head KD: {teacher_name} gives class scores of shapes {t_shapes} per level '
                f'(anchors*classes, H, W) but the student {s_shapes}; the heads differ in '
                'classes, anchors or strides. Align the configs, or distil features only '
                '(logit_kd=None and feature_kd=dict(...)).')
        if any(shape[0] % self.num_classes for shape in t_shapes):
            raise ValueError(
                f'{teacher_name} has class-score channels {[s[0] for s in t_shapes]}, not a '
                f'multiple of the student\'s {self.num_classes} classes: teachers and student '
                'must share the label set.')
