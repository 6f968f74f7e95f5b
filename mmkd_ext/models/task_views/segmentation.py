"""Task view of mmseg encoder-decoder segmentors."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd_ext.registry import TASK_VIEWS
from .base import BaseTaskView


@TASK_VIEWS.register_module()
class SegmentationView(BaseTaskView):
    """Task view of mmseg ``EncoderDecoder`` segmentors (PSPNet, DeepLabV3, FCN...):
    the decode head's class scores ``[B, C, h, w]`` (at the head's output stride),
    recorded at its last layer ``decode_head.conv_seg``.

    - per-image logits ``[B, C]``: the log of the softmax map averaged over locations,
      so that their softmax (what the weightings take) is the image's mean class
      distribution;
    - logit KD ``[B]``: the KD loss at every location (``KLDivergence`` over classes
      by default), averaged per image over the locations whose ground truth is not
      the ignore label; a teacher map of another size (another output stride) is
      resized to the student's first. A loss that already returns one value per
      image (``ChannelWiseDivergence``) is used as is;
    - per-image task loss ``[B]``: the pixel cross-entropy with the ground truth, the
      scores resized to the label map as mmseg's decode head does, averaged over the
      image's labelled pixels;
    - hard images (MMKD's buffer): the averaged scores rank some class absent from
      the ground truth above a class present in it;
    - features: the backbone's last output (``'backbone[-1]'``: ``layer4`` of
      mmseg's ResNets, the last stage of SegFormer's MixVisionTransformer).

    Args:
        ignore_index (int, optional): the ignored label; by default the student
            decode head's (255 on Cityscapes).

    Resizing follows the student decode head's ``align_corners`` (read in
    :meth:`bind`); labels are resized with ``nearest-exact`` (the label at each
    output location's centre).
    """
    head_module = 'decode_head.conv_seg'
    default_feature_layers = ('backbone[-1]', )

    def __init__(self, ignore_index: Optional[int] = None):
        self.ignore_index = ignore_index
        self.align_corners = False

    def bind(self, student: nn.Module) -> None:
        head = getattr(student, 'decode_head', None)
        if head is None or not hasattr(head, 'conv_seg'):
            what = (f'{type(student).__name__} without a decode_head' if head is None else
                    f'{type(student).__name__} with a {type(head).__name__}')
            raise TypeError(
                f'{type(self).__name__} distils per-pixel class scores: it needs an mmseg '
                f'segmentor whose decode_head ends in conv_seg (FCN, PSP, ASPP, '
                f'DepthwiseSeparableASPP, UPer, SegFormer heads...); got {what}. '
                'Query-based mask heads (Mask2Former, MaskFormer) have no per-pixel scores '
                'and are not supported: distil such a model with another decode head, or '
                'give model.task_view=dict(type=...) a view of your own.')
        if head.out_channels == 1:
            raise ValueError(f'{type(head).__name__} predicts one sigmoid channel (binary '
                             f'segmentation); {type(self).__name__} distils softmax heads.')
        if self.ignore_index is None:
            self.ignore_index = head.ignore_index
        self.align_corners = head.align_corners

    def teacher_forward(self, teacher: nn.Module, inputs: torch.Tensor,
                        data_samples: list) -> torch.Tensor:
        """The decode head's class scores ``[B, C, h, w]``, before any resizing."""
        return teacher.decode_head(teacher.extract_feat(inputs))

    # -------------------------------------------------------------- helpers
    def _resize(self, scores: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        if tuple(scores.shape[-2:]) == tuple(size):
            return scores
        return F.interpolate(scores, size=size, mode='bilinear',
                             align_corners=self.align_corners)

    def _labels(self, data_samples: list,
                size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Ground-truth ids ``[B, H, W]`` (long) of the padded batch, resized to
        ``size`` (the label at each output location's centre)."""
        if not data_samples or 'gt_sem_seg' not in data_samples[0]:
            raise KeyError(f'{type(self).__name__} needs the ground truth (gt_sem_seg) in '
                           'the data samples: training data loaded with LoadAnnotations.')
        labels = torch.stack([s.gt_sem_seg.data for s in data_samples])  # [B, 1, H, W]
        if size is not None and tuple(labels.shape[-2:]) != tuple(size):
            labels = F.interpolate(labels.float(), size=size, mode='nearest-exact')
        return labels[:, 0].long()

    def _mean_over_labelled(self, values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``[B, H, W]`` values -> ``[B]``: each image's mean over its pixels whose
        label (``[B, H, W]``) is not ignored (0 for an image with none)."""
        valid = (labels != self.ignore_index).to(values.dtype)
        return (values * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp_min(1.0)

    # -------------------------------------------------------------- the view
    def sample_logits(self, head_out: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]`` scores -> ``[B, C]``: log of the mean softmax map."""
        mean_probs = head_out.float().softmax(dim=1).mean(dim=(2, 3))
        return mean_probs.clamp_min(torch.finfo(torch.float32).tiny).log()

    def logit_kd(self, kd_loss: nn.Module, student_out: torch.Tensor,
                 teacher_out: torch.Tensor, data_samples: list) -> torch.Tensor:
        size = student_out.shape[-2:]
        term = kd_loss(student_out, self._resize(teacher_out, size))
        if term.dim() == 1:  # already one value per image
            return term
        labels = self._labels(data_samples, size).to(term.device)
        return self._mean_over_labelled(term, labels)

    def sample_loss(self, head_out: torch.Tensor, data_samples: list) -> torch.Tensor:
        labels = self._labels(data_samples).to(head_out.device)
        scores = self._resize(head_out, labels.shape[-2:])
        ce = F.cross_entropy(scores, labels, ignore_index=self.ignore_index,
                             reduction='none')  # [B, H, W]
        return self._mean_over_labelled(ce, labels)

    def hard_samples(self, student_logits: torch.Tensor, data_samples: list) -> torch.Tensor:
        """``[B]`` bool from per-image logits ``[B, C]``: the image's mean class
        distribution ranks a class absent from its ground truth above a present one."""
        hard = []
        for logits, labels in zip(student_logits, self._labels(data_samples)):
            present = torch.zeros(len(logits), dtype=torch.bool, device=logits.device)
            ids = labels.unique()
            present[ids[ids != self.ignore_index].to(logits.device)] = True
            hard.append(bool(present.any()) and bool((~present).any())
                        and bool(logits[present].min() < logits[~present].max()))
        return torch.tensor(hard, device=student_logits.device)
