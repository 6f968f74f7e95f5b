"""The Shapes-10 classifiers' residual initialisation (configs/_base_/models/).

The ResNet-18s start every residual branch at the BN layers' default scale (with
mmpretrain's zero start they sat near chance for their first epochs, leaving that
plateau at a seed-dependent time); the bottleneck ResNet-50 keeps the zero start,
without which it diverged at the schedules' learning rate.
"""
import pytest
import torch
from mmengine.config import Config
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck
from mmpretrain.registry import MODELS

CONFIGS = 'configs/classification'


@pytest.mark.parametrize('config, residual_start', [
    ('students/resnet18_w8_shapes10.py', 1.0),
    ('teachers/resnet18_w16_shapes10.py', 1.0),
    ('teachers/resnet18_w24_shapes10.py', 1.0),
    ('teachers/resnet50_w8_shapes10.py', 0.0),
])
def test_residual_branches_start_as_documented(config, residual_start):
    model = MODELS.build(Config.fromfile(f'{CONFIGS}/{config}').model)
    model.init_weights()
    blocks = [m for m in model.backbone.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert blocks
    for block in blocks:
        last_norm = block.norm3 if isinstance(block, Bottleneck) else block.norm2
        assert torch.all(last_norm.weight == residual_start), config
