"""The Shapes-10 classifiers' residual initialisation (configs/_base_/models/).

The basic-block ResNet-18s start every residual branch at the BN layers' default
scale; the bottleneck ResNet-50 keeps mmpretrain's zero start. Why:
docs/en/advanced_guides/benchmark.md, "Residual initialisation and the learning curve".
"""
import os.path as osp

import pytest
import torch
from conftest import STUDENT_CONFIG, TEACHER_CONFIGS
from mmengine.config import Config
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck
from mmpretrain.registry import MODELS


@pytest.mark.parametrize('config', [STUDENT_CONFIG, *TEACHER_CONFIGS.values()],
                         ids=osp.basename)
def test_only_bottleneck_residual_branches_start_at_zero(config):
    # The scope is explicit: another test in the same worker may have left a
    # different default scope (mmdet, mmseg) current.
    model = MODELS.build(dict(Config.fromfile(config).model, _scope_='mmpretrain'))
    model.init_weights()
    blocks = [m for m in model.backbone.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert blocks
    for block in blocks:
        if isinstance(block, Bottleneck):
            assert torch.all(block.norm3.weight == 0), config
        else:
            assert torch.all(block.norm2.weight == 1), config
