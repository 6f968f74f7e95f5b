"""Task view of mmdet's DETR-family detectors (``DetectionTransformer``)."""
import inspect
from typing import Optional, Union

import torch
import torch.nn as nn

from mmkd_ext.models.losses.focal import sigmoid_focal_loss
from mmkd_ext.registry import TASK_VIEWS
from .base import BaseTaskView
from .detection import missed_class_images

#: DETR-family detectors whose queries this view cannot read, with the reason.
UNSUPPORTED_DETRS = {
    'GroundingDINO': 'its queries are classified against text prompts, not a label set',
    'DDQDETR': 'it adds dense auxiliary queries after the matching queries in training',
}

#: A head output: the head's raw ``(layers_cls_scores, layers_bbox_preds)``, each
#: ``[L, B, Q', *]`` (the student's recorded output), or the ``[B, Q, C]`` query
#: logits :meth:`DETRView.teacher_forward` returns.
HeadOutput = Union[tuple, torch.Tensor]


def _is_softmax_head(head: nn.Module) -> bool:
    """Whether a DETR head classifies with a softmax over its classes and a
    background class (DETR's ``CrossEntropyLoss``), not per-class sigmoids."""
    return head.cls_out_channels == head.num_classes + 1


def _presence_logits(cls_scores: torch.Tensor, softmax: bool) -> torch.Tensor:
    """``[..., C]`` logits of each query's per-class probability.

    Sigmoid heads' scores are such logits already; a softmax head's ``[..., C + 1]``
    scores (background last) become ``logit(p_c) = log p_c - log(1 - p_c)`` of their
    softmax probabilities ``p_c`` of the C object classes (``p_c`` at most
    ``1 - 1e-6``, so the logits are finite).
    """
    if not softmax:
        return cls_scores
    log_p = cls_scores.log_softmax(-1)[..., :-1].clamp(max=-1e-6)
    return log_p - torch.log(-torch.expm1(log_p))


@TASK_VIEWS.register_module()
class DETRView(BaseTaskView):
    """Task view of DETR-family detectors: DETR, Deformable DETR, DINO, Conditional
    DETR, DAB-DETR (mmdet's ``DetectionTransformer`` subclasses).

    A DETR predicts a set of Q queries, each with class scores and a box; the queries
    of two models do not correspond (each model's Hungarian matching decides which
    query predicts which object), so the view compares models per image, through
    each class's best query:

    - query logits ``[B, Q, C]``: the last decoder layer's class scores of the Q
      matching queries (DINO's denoising queries, which come first in training, are
      left out). Sigmoid heads' scores are used as they are; a softmax head's (DETR's,
      with a background class) become the logits of its per-class probabilities, so
      sigmoid and softmax DETRs distil into each other;
    - per-image logits ``[B, C]``: each class's highest query logit, the logit of the
      probability that the class is in the image;
    - logit KD ``[B]``: the KD loss on the per-image logits (``SigmoidKLDivergence``:
      the KL divergence between the per-class Bernoulli distributions of presence);
    - per-image task loss ``[B]`` (a documented proxy for the detection loss, which
      needs a matching per image): the sigmoid focal loss of the per-image logits
      against the classes of the image's ground-truth boxes, summed over the classes
      and divided by the number of classes present (at least 1). It scores what the
      weightings compare (whether the objects' classes are found), not the boxes;
    - hard images (MMKD's buffer): some ground-truth class of the image has no query
      above 0.5;
    - features: the neck's output (every level of the ``ChannelMapper``) by default.

    Query-by-query head KD is not offered: it would need a matching between the
    student's and each teacher's queries. Teachers must be DETR-family detectors of
    the student's label set; other models are refused at construction.

    Args:
        focal_alpha (float), focal_gamma (float): of the task-loss proxy.
    """
    head_module = 'bbox_head'
    default_feature_layers = ('neck', )

    def __init__(self, focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.num_classes: Optional[int] = None
        self.num_queries: Optional[int] = None
        self.softmax = False

    @staticmethod
    def check_model(model: nn.Module, owner: str) -> None:
        """Refuse a model whose queries the view cannot read, naming ``owner``."""
        from mmdet.models.detectors import DetectionTransformer
        name = type(model).__name__
        if not isinstance(model, DetectionTransformer):
            raise TypeError(
                f'DETRView: {owner} is a {name}, not a DETR-family detector (mmdet '
                'DetectionTransformer: DETR, Deformable DETR, DINO, Conditional DETR, '
                'DAB-DETR). Its teachers must be DETRs too: per-query outputs of other '
                'detectors do not compare with queries.')
        reason = next((why for cls, why in UNSUPPORTED_DETRS.items()
                       if any(c.__name__ == cls for c in type(model).__mro__)), None)
        if reason:
            raise TypeError(f'DETRView does not support {name} ({owner}): {reason}.')

    def bind(self, student: nn.Module) -> None:
        self.check_model(student, 'the student')
        head = student.bbox_head
        self.num_classes = head.num_classes
        self.num_queries = student.num_queries
        self.softmax = _is_softmax_head(head)

    # -------------------------------------------------------------- outputs
    def teacher_forward(self, teacher: nn.Module, inputs: torch.Tensor,
                        data_samples: Optional[list]) -> torch.Tensor:
        """The model's query logits ``[B, Q, C]`` (see the class docstring).

        Runs the backbone, neck and transformer, then ``bbox_head`` on the decoder's
        outputs as the model's ``loss`` does (a model in training mode, e.g. the
        student in a look-ahead pass, adds its denoising queries, which are then
        dropped). ``data_samples`` may be None (the probe at construction): the images
        are then taken as unpadded.
        """
        self.check_model(teacher, 'a teacher')  # the student is checked by bind()
        if data_samples is None:
            data_samples = _unpadded_samples(inputs)
        feats = teacher.extract_feat(inputs)
        head_inputs = teacher.forward_transformer(feats, data_samples)
        head = teacher.bbox_head
        accepted = inspect.signature(head.forward).parameters
        cls_scores, _ = head(**{k: v for k, v in head_inputs.items() if k in accepted})
        return _presence_logits(cls_scores[-1][:, -teacher.num_queries:],
                                _is_softmax_head(head))

    def query_logits(self, head_out: HeadOutput) -> torch.Tensor:
        """``[B, Q, C]`` query logits of a head output: :meth:`teacher_forward`'s as
        they are, the student's raw head output from its last decoder layer and its
        matching queries."""
        if torch.is_tensor(head_out):
            return head_out
        cls_scores = head_out[0][-1]  # [B, Q', C or C + 1], the last decoder layer
        return _presence_logits(cls_scores[:, -self.num_queries:], self.softmax)

    # -------------------------------------------------------------- the view
    def sample_logits(self, head_out: HeadOutput) -> torch.Tensor:
        return self.query_logits(head_out).amax(1)

    def logit_kd(self, kd_loss: nn.Module, student_out: HeadOutput,
                 teacher_out: HeadOutput, data_samples: list) -> torch.Tensor:
        return kd_loss(self.sample_logits(student_out), self.sample_logits(teacher_out))

    def sample_loss(self, head_out: HeadOutput, data_samples: list) -> torch.Tensor:
        logits = self.sample_logits(head_out)
        present = self._presence_targets(data_samples, logits)
        focal = sigmoid_focal_loss(logits, present, self.focal_alpha, self.focal_gamma)
        return focal.sum(1) / present.sum(1).clamp_min(1.0)

    def _presence_targets(self, data_samples: list, like: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` 0/1: the classes of each image's ground-truth boxes."""
        present = torch.zeros_like(like)
        for row, sample in zip(present, data_samples):
            row[sample.gt_instances.labels.to(like.device).long()] = 1.0
        return present

    def hard_samples(self, student_logits: torch.Tensor, data_samples: list) -> torch.Tensor:
        return missed_class_images(
            student_logits, [s.gt_instances.labels for s in data_samples])


def _unpadded_samples(inputs: torch.Tensor) -> list:
    """One ``DetDataSample`` per image of ``inputs`` ``[B, 3, H, W]`` with the meta
    information the transformers read (no padding, no ground truth)."""
    from mmdet.structures import DetDataSample
    shape = tuple(inputs.shape[-2:])
    return [DetDataSample(metainfo=dict(batch_input_shape=shape, img_shape=shape,
                                        ori_shape=shape, scale_factor=(1.0, 1.0)))
            for _ in range(len(inputs))]
