import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd_ext.registry import TASK_VIEWS
from .base import BaseTaskView


@TASK_VIEWS.register_module()
class ClassificationView(BaseTaskView):
    """Task view of mmpretrain ``ImageClassifier`` models.

    - logits: the head's class scores ``[B, C]``;
    - logit KD: the KD loss on those scores, ``[B]``;
    - per-sample loss: cross-entropy with the label (soft cross-entropy when batch
      augmentation turned labels into scores), ``[B]``;
    - features: the backbone's last output by default (``'backbone[-1]'``): a
      CNN's last stage ``[B, C, H, W]``, a ViT's class token ``[B, C]`` (a
      distilled DeiT's class and distillation tokens, two features), ConvNeXt's
      pooled ``[B, C]``, a Swin's last stage.
    """
    head_module = 'head'
    default_feature_layers = ('backbone[-1]', )

    def sample_logits(self, head_out: torch.Tensor) -> torch.Tensor:
        if isinstance(head_out, (tuple, list)):  # heads that return several scores
            head_out = head_out[-1]
        return head_out

    def logit_kd(self, kd_loss: nn.Module, student_out, teacher_out,
                 data_samples: list) -> torch.Tensor:
        return kd_loss(self.sample_logits(student_out), self.sample_logits(teacher_out))

    def hard_samples(self, student_logits: torch.Tensor, data_samples: list) -> torch.Tensor:
        """Misclassified samples (top-1 differs from the label)."""
        if 'gt_score' in data_samples[0]:
            labels = torch.stack([s.gt_score for s in data_samples]).argmax(1)
        else:
            labels = torch.cat([s.gt_label for s in data_samples])
        return student_logits.argmax(1) != labels.to(student_logits.device)

    def sample_loss(self, head_out, data_samples: list) -> torch.Tensor:
        logits = self.sample_logits(head_out)
        if 'gt_score' in data_samples[0]:
            target = torch.stack([s.gt_score for s in data_samples]).to(logits)
            return -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
        labels = torch.cat([s.gt_label for s in data_samples]).to(logits.device)
        return F.cross_entropy(logits, labels, reduction='none')
