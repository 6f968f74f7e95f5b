"""The family matrix: the model families of the libraries' zoos, each distilled with
every weighting.

Each :class:`Family` names a zoo config (``mmdet::``, ``mmseg::``, ``mmpretrain::``) and
the ``cfg_options`` that make it a tiny CPU model (narrow widths, few layers, no
pretrained weights, the generated data's classes); nothing of the zoo config is
copied. :func:`family_kd_config` turns a task's distillation config into one whose
student and two teachers (random weights, two seeds) are that family, on the task's
generated data, for a few iterations. ``tests/test_engine/test_family_matrix.py`` runs
the matrix (a fast subset by default, all of it under ``slow``), and
``python tools/benchmark.py --families`` runs it outside the tests and prints
:func:`markdown_table`, the README's table (which states only what the test asserts).
"""
import os.path as osp
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from benchmarks.methods import METHOD_TABLE

DET_CLASSES = 8  # Shapes-COCO
SEG_CLASSES = 19  # Cityscapes-Streets
CLS_CLASSES = 10  # Shapes-10


class Family(NamedTuple):
    """A zoo config and the overrides that make it a tiny CPU model.

    Attributes:
        name: the family's display name.
        task: ``'classification'``, ``'detection'`` or ``'segmentation'``.
        config: the zoo config (``pkg::path``).
        cfg_options: overrides relative to its ``model``.
        probe_shape: the distiller's ``probe_shape`` for it.
        fast_method: the method the default test run distils it with (the other
            cases run under ``slow``); None: every case is slow (the default run
            covers most families in their own modules: two-stage, DETR, token
            backbones).
        refused: a pattern of the build-time error, for a family no view supports.
        refused_methods: ``{method: pattern of its build-time error}`` for the
            weightings that cannot serve the family.
        note: what the README's table says beside the family (why it is refused,
            what a method approximates on it).
    """
    name: str
    task: str
    config: str
    cfg_options: dict
    probe_shape: Tuple[int, int, int]
    fast_method: Optional[str] = None
    refused: Optional[str] = None
    refused_methods: Dict[str, str] = {}
    note: str = ''

    def entry(self, **kwargs) -> dict:
        """The distiller's student/teacher entry of this family."""
        return dict(config=self.config, cfg_options=dict(self.cfg_options), **kwargs)


def _resnet_fpn(depth=18, width=8, out_indices=(0, 1, 2, 3), neck_out=16):
    """A narrow ResNet with its FPN, for mmdet's ResNet-FPN configs."""
    expansion = 1 if depth in (18, 34) else 4
    return {
        'backbone.depth': depth,
        'backbone.base_channels': width,
        'backbone.stem_channels': width,
        'backbone.out_indices': out_indices,
        'backbone.init_cfg': None,
        'backbone.norm_cfg': dict(type='BN', requires_grad=True),
        'neck.in_channels': [width * expansion * 2**i for i in out_indices],
        'neck.out_channels': neck_out,
    }


def _dense_head(neck_out=16, gn=False, **extra):
    head = {'bbox_head.num_classes': DET_CLASSES, 'bbox_head.in_channels': neck_out,
            'bbox_head.feat_channels': neck_out, 'bbox_head.stacked_convs': 1}
    if gn:
        head['bbox_head.norm_cfg'] = dict(type='GN', num_groups=4, requires_grad=True)
    head.update(extra)
    return head


def _two_stage(neck_out=16):
    return {
        'rpn_head.in_channels': neck_out, 'rpn_head.feat_channels': neck_out,
        'roi_head.bbox_roi_extractor.out_channels': neck_out,
        'train_cfg.rpn_proposal.nms_pre': 200, 'train_cfg.rpn_proposal.max_per_img': 64,
        'test_cfg.rpn.nms_pre': 200, 'test_cfg.rpn.max_per_img': 64,
    }


def _roi_bbox_head(neck_out=16):
    return dict(in_channels=neck_out, fc_out_channels=32, num_classes=DET_CLASSES)


_DET_PROBE = (3, 128, 128)

DETECTION = (
    Family('RetinaNet', 'detection', 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
           {**_resnet_fpn(out_indices=(1, 2, 3)), 'neck.num_outs': 4,
            'neck.start_level': 0, **_dense_head(
                **{'bbox_head.anchor_generator.strides': [8, 16, 32, 64]})},
           _DET_PROBE),
    Family('FCOS', 'detection', 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
           {**_resnet_fpn(), 'backbone.style': 'pytorch', **_dense_head(gn=True)},
           _DET_PROBE),
    Family('ATSS', 'detection', 'mmdet::atss/atss_r50_fpn_1x_coco.py',
           {**_resnet_fpn(), **_dense_head(gn=True)}, _DET_PROBE),
    Family('GFL', 'detection', 'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
           {**_resnet_fpn(), **_dense_head(gn=True)}, _DET_PROBE),
    Family('RTMDet', 'detection', 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
           {'backbone.init_cfg': None, 'backbone.widen_factor': 0.125,
            'neck.in_channels': [32, 64, 128], 'neck.out_channels': 16,
            'bbox_head.in_channels': 16, 'bbox_head.feat_channels': 16,
            'bbox_head.num_classes': DET_CLASSES, 'bbox_head.stacked_convs': 1},
           _DET_PROBE, fast_method='mmkd',
           note="MMKD: CSPNeXt's hardsigmoid substituted in the look-ahead"),
    Family('TOOD', 'detection', 'mmdet::tood/tood_r50_fpn_1x_coco.py',
           {**_resnet_fpn(), **_dense_head(gn=True)}, _DET_PROBE,
           refused='TOODHead gives class probabilities, not logits',
           note="refused: TOOD's head gives class probabilities (a geometric mean with its "
           'alignment), not the class logits the view reads'),
    Family('YOLOX', 'detection', 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py',
           {'backbone.widen_factor': 0.125, 'neck.in_channels': [32, 64, 128],
            'neck.out_channels': 16, 'bbox_head.in_channels': 16,
            'bbox_head.feat_channels': 16, 'bbox_head.num_classes': DET_CLASSES,
            'bbox_head.stacked_convs': 1, 'data_preprocessor.batch_augments': None},
           _DET_PROBE),
    Family('Faster R-CNN', 'detection', 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
           {**_resnet_fpn(), **_two_stage(),
            **{f'roi_head.bbox_head.{k}': v for k, v in _roi_bbox_head().items()},
            'train_cfg.rcnn.sampler.num': 64},
           _DET_PROBE, fast_method='mmkd',
           refused_methods={'entropy': 'every teacher.s entropy is 0'},
           note='RPN objectness and FPN distilled (not the RoI head); EBKD refused: the '
           "entropy of one objectness class is 0; MMKD: RoIAlign substituted in the "
           'look-ahead'),
    Family('Cascade R-CNN', 'detection', 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
           {**_resnet_fpn(), **_two_stage(),
            **{f'roi_head.bbox_head.{i}.{k}': v for i in range(3)
               for k, v in _roi_bbox_head().items()},
            **{f'train_cfg.rcnn.{i}.sampler.num': 64 for i in range(3)}},
           _DET_PROBE, refused_methods={'entropy': 'every teacher.s entropy is 0'},
           note='as Faster R-CNN'),
)

def _detr(width=8, out_indices=(3, ), embed_dims=16):
    """cfg-options of a DETR-family zoo config: a ResNet-18 of ``width`` base channels
    and its ChannelMapper to ``embed_dims``, one encoder and two decoder layers of two
    heads, ten queries, the generated data's classes."""
    return {
        'backbone.depth': 18, 'backbone.base_channels': width, 'backbone.stem_channels': width,
        'backbone.out_indices': out_indices, 'backbone.init_cfg': None,
        'backbone.norm_cfg': dict(type='BN', requires_grad=True),
        'neck.in_channels': [width * 2**i for i in out_indices],
        'neck.out_channels': embed_dims,
        'encoder.num_layers': 1, 'decoder.num_layers': 2,
        'encoder.layer_cfg.self_attn_cfg.embed_dims': embed_dims,
        'encoder.layer_cfg.self_attn_cfg.num_heads': 2,
        'encoder.layer_cfg.ffn_cfg.embed_dims': embed_dims,
        'encoder.layer_cfg.ffn_cfg.feedforward_channels': 32,
        'decoder.layer_cfg.self_attn_cfg.embed_dims': embed_dims,
        'decoder.layer_cfg.self_attn_cfg.num_heads': 2,
        'decoder.layer_cfg.cross_attn_cfg.embed_dims': embed_dims,
        'decoder.layer_cfg.cross_attn_cfg.num_heads': 2,
        'decoder.layer_cfg.ffn_cfg.embed_dims': embed_dims,
        'decoder.layer_cfg.ffn_cfg.feedforward_channels': 32,
        'positional_encoding.num_feats': embed_dims // 2,
        'bbox_head.num_classes': DET_CLASSES, 'bbox_head.embed_dims': embed_dims,
        'num_queries': 10,
    }


_DETR_MULTI_SCALE = dict(out_indices=(1, 2, 3))
_DETR_GN = {'neck.norm_cfg': dict(type='GN', num_groups=4)}
_DETR_PROBE = (3, 64, 64)
# DINO's and Conditional DETR's decoders encode the reference points with mmdet's
# default 128 sine features a coordinate, which fixes their width at 256.

DETR = (
    Family('DETR', 'detection', 'mmdet::detr/detr_r50_8xb2-150e_coco.py', _detr(), _DETR_PROBE,
           note="DETRView: per-image logit KD (each class's best query of the last decoder "
           'layer), neck features'),
    Family('Deformable DETR', 'detection',
           'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
           {**_detr(**_DETR_MULTI_SCALE), **_DETR_GN}, _DETR_PROBE, note='as DETR'),
    Family('DINO', 'detection', 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
           {**_detr(embed_dims=256, **_DETR_MULTI_SCALE), **_DETR_GN,
            'dn_cfg.group_cfg.num_dn_queries': 10}, _DETR_PROBE, note='as DETR'),
    Family('Conditional DETR', 'detection',
           'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py',
           _detr(embed_dims=256), _DETR_PROBE, note='as DETR'),
    Family('DAB-DETR', 'detection', 'mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py', _detr(),
           _DETR_PROBE, note='as DETR'),
)

_SEG_PROBE = (3, 64, 128)
_SEG_HEADS = {'decode_head.num_classes': SEG_CLASSES, 'auxiliary_head': None,
              'data_preprocessor.size': (64, 128)}


def _seg_resnet(width=8):
    return {'backbone.stem_channels': width, 'backbone.base_channels': width,
            'backbone.init_cfg': None, 'pretrained': None,
            'backbone.norm_cfg': dict(type='BN', requires_grad=True)}


SEGMENTATION = (
    Family('PSPNet', 'segmentation', 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
           {**_seg_resnet(), **_SEG_HEADS, 'decode_head.in_channels': 64,
            'decode_head.channels': 16, 'decode_head.norm_cfg': dict(type='BN')},
           _SEG_PROBE),
    Family('DeepLabV3+', 'segmentation',
           'mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
           {**_seg_resnet(), **_SEG_HEADS, 'decode_head.in_channels': 64,
            'decode_head.channels': 16, 'decode_head.c1_in_channels': 8,
            'decode_head.c1_channels': 8, 'decode_head.norm_cfg': dict(type='BN')},
           _SEG_PROBE),
    Family('SegFormer', 'segmentation',
           'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
           {'backbone.init_cfg': None, 'backbone.embed_dims': 8,
            'backbone.num_layers': [1, 1, 1, 1], 'pretrained': None,
            **_SEG_HEADS, 'decode_head.in_channels': [8, 16, 40, 64],
            'decode_head.channels': 16, 'decode_head.norm_cfg': dict(type='BN')},
           _SEG_PROBE),
    Family('Mask2Former', 'segmentation',
           'mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
           {'backbone.depth': 18, 'backbone.init_cfg': None,
            'backbone.norm_cfg': dict(type='BN', requires_grad=True),
            'decode_head.in_channels': [64, 128, 256, 512],
            'decode_head.num_classes': SEG_CLASSES, 'data_preprocessor.size': (64, 128),
            'decode_head.feat_channels': 32, 'decode_head.out_channels': 32,
            'decode_head.num_queries': 10,
            'decode_head.positional_encoding.num_feats': 16,
            'decode_head.pixel_decoder.positional_encoding.num_feats': 16,
            'decode_head.pixel_decoder.encoder.num_layers': 1,
            'decode_head.pixel_decoder.encoder.layer_cfg':
                dict(self_attn_cfg=dict(embed_dims=32), ffn_cfg=dict(
                    embed_dims=32, feedforward_channels=64)),
            'decode_head.transformer_decoder.num_layers': 1,
            'decode_head.transformer_decoder.layer_cfg':
                dict(self_attn_cfg=dict(embed_dims=32), cross_attn_cfg=dict(embed_dims=32),
                     ffn_cfg=dict(embed_dims=32, feedforward_channels=64))},
           _SEG_PROBE, refused='Mask2FormerHead',
           note='query-based mask classification: no per-pixel class scores to distil'),
)

_CLS_PROBE = (3, 32, 32)
_CLS_HEAD = {'head.num_classes': CLS_CLASSES, 'train_cfg': None,
             'data_preprocessor.num_classes': CLS_CLASSES}
_VIT = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)

CLASSIFICATION = (
    Family('ResNet', 'classification', 'mmpretrain::resnet/resnet18_8xb32_in1k.py',
           {'backbone.stem_channels': 8, 'backbone.base_channels': 8,
            'head.in_channels': 64, **_CLS_HEAD}, _CLS_PROBE),
    Family('MobileNetV2', 'classification', 'mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py',
           {'backbone.widen_factor': 0.25, **_CLS_HEAD}, _CLS_PROBE),
    Family('ConvNeXt', 'classification', 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py',
           {'backbone.arch': dict(_delete_=True, depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
            'backbone.drop_path_rate': 0.0, 'head.in_channels': 64, **_CLS_HEAD},
           _CLS_PROBE, note='pooled vector features (LinearAdapter)'),
    Family('DeiT', 'classification', 'mmpretrain::deit/deit-tiny_4xb256_in1k.py',
           {'backbone.arch': dict(_VIT, _delete_=True), 'backbone.img_size': 32,
            'backbone.patch_size': 8, 'backbone.drop_path_rate': 0.0, 'head.in_channels': 32,
            'init_cfg': None, **_CLS_HEAD}, _CLS_PROBE,
           note='class-token vector features (LinearAdapter); MMKD: '
           "attention on torch's math backend in the look-ahead"),
    Family('ViT', 'classification', 'mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py',
           {'backbone.arch': dict(_VIT, _delete_=True), 'backbone.img_size': 32,
            'backbone.patch_size': 8, 'backbone.drop_rate': 0.0, 'head.in_channels': 32,
            'head.hidden_dim': None, **_CLS_HEAD}, _CLS_PROBE, note='as DeiT'),
    Family('Swin', 'classification', 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
           {'backbone.arch': dict(_delete_=True, embed_dims=8, depths=[1, 1, 1, 1],
                                  num_heads=[1, 1, 2, 2]),
            'backbone.img_size': 32, 'backbone.window_size': 2, 'backbone.pad_small_map': True,
            'backbone.drop_path_rate': 0.0,
            'head.in_channels': 64, **_CLS_HEAD}, _CLS_PROBE),
)

FAMILIES: Dict[str, Family] = {
    f.name: f for f in DETECTION + DETR + SEGMENTATION + CLASSIFICATION}


#: A detection pool of five dense-head families for a RetinaNet student (9 anchors per
#: location, strides 8-64): FCOS (centerness) and GFL with strides 8-128, RTMDet and
#: YOLOX (objectness) with strides 8-32, and a RetinaNet. Head KD follows
#: DenseDetectionView's rule for heads of other layouts; feature KD takes the FPN
#: levels of strides 8, 16 and 32, which every family has.
MIXED_DETECTION_STUDENT = 'RetinaNet'
MIXED_DETECTION_POOL = ('RetinaNet', 'FCOS', 'GFL', 'RTMDet', 'YOLOX')
MIXED_DETECTION_LAYERS = ('neck[0]', 'neck[1]', 'neck[2]')


#: The weightings of the matrix (MTKD-RL's two policies share every code path but the
#: policy's, so the deterministic one stands for both).
MATRIX_METHODS = tuple(m.key for m in METHOD_TABLE if m.key != 'mtkd_rl_stochastic')


def matrix_cases(fast_only: bool = False) -> List[Tuple[Family, str]]:
    """``(family, method)`` pairs of the matrix; ``fast_only``: those of the default
    test run (a family's ``fast_method``)."""
    return [(family, method) for family in FAMILIES.values() for method in MATRIX_METHODS
            if not fast_only or method == family.fast_method]


def method_overrides(method: str, batch_size: int, num_teachers: int = 2) -> dict:
    """cfg-options that let a method act within a few iterations of ``batch_size``:
    MMKD's meta step every iteration on a quiz batch of the current size, MTKD-RL's
    agent acting and learning from the first iteration; fixed weights, one per teacher
    (decreasing)."""
    if method == 'fixed':
        return {'model.weighting.weights': list(range(num_teachers, 0, -1))}
    if method == 'mmkd':
        return {'model.weighting.batch_size': batch_size,
                'custom_hooks.0.interval': 1,
                'custom_hooks.0.buffer_size': 2 * batch_size,
                'custom_hooks.0.quiz_batch_size': batch_size}
    if method.startswith('mtkd_rl'):
        return {'model.weighting.warmup_epochs': 0, 'custom_hooks.0.agent_interval': 1}
    return {}


def family_kd_config(family: Family, method: str, kd_config: str, data_options: dict,
                     teacher_checkpoints: Sequence[str], work_dir: str,
                     iters: int = 2, batch_size: int = 2):
    """The task's distillation config (``kd_config`` with ``{}`` for the method) with
    the family as student and teachers (:func:`pool_kd_config`)."""
    teachers = [(family, path) for path in teacher_checkpoints]
    return pool_kd_config(family, teachers, method, kd_config, data_options, work_dir,
                          iters=iters, batch_size=batch_size)


def pool_kd_config(student: Family, teachers: Sequence[Tuple[Family, str]], method: str,
                   kd_config: str, data_options: dict, work_dir: str,
                   feature_layers: Optional[Sequence[str]] = None,
                   iters: int = 2, batch_size: int = 2):
    """The task's distillation config (``kd_config`` with ``{}`` for the method) with
    ``student`` and the ``(family, checkpoint)`` teachers, trained ``iters``
    iterations without validation.

    The task view is left to its default for the student, and so are the feature
    layers (unless ``feature_layers``, e.g. the FPN levels a pool of several families
    shares) and their adapters: what a user gets without naming them. Returns an
    mmengine ``Config``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(kd_config.format(method))
    model = cfg.model
    model.student = student.entry()
    model.teachers = [family.entry(name=f'{family.name} #{i}', checkpoint=path)
                      for i, (family, path) in enumerate(teachers)]
    model.probe_shape = student.probe_shape
    model.pop('task_view', None)
    if model.get('feature_kd') is not None:  # the defaults for the family's features
        model.feature_kd.pop('adapter', None)
        model.feature_kd.pop('layers', None)
        model.feature_kd.pop('teacher_layers', None)
        if feature_layers:
            model.feature_kd.layers = list(feature_layers)
    options = {k: v for k, v in data_options.items() if k.startswith('train_')}
    options.update({
        'train_dataloader.batch_size': batch_size,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop', max_iters=iters,
                          val_interval=10**6),
        'param_scheduler': [],
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=10**6,
                                         by_epoch=False),
        'default_hooks.logger.interval': 1,
        'val_dataloader': None, 'val_cfg': None, 'val_evaluator': None,
        'test_dataloader': None, 'test_cfg': None, 'test_evaluator': None,
        **method_overrides(method, batch_size,
                           sum(family.task == student.task for family, _ in teachers)),
    })
    cfg.merge_from_dict(options)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'{student.name}_{method}'.replace(' ', '_')
    return cfg


def save_family_checkpoint(family: Family, folder: str, seed: int) -> str:
    """The path of a checkpoint under ``folder`` of the family's model initialised
    (``init_weights``: e.g. Deformable DETR's level embeddings are uninitialised memory
    until then) under ``seed``; written once."""
    import torch

    from mmkd_ext.utils.model_builder import build_model
    path = osp.join(folder, f'{family.name}_{seed}.pth'.replace(' ', '_'))
    if not osp.exists(path):
        torch.manual_seed(seed)
        model, _ = build_model(family.config, cfg_options=family.cfg_options)
        model.init_weights()
        torch.save(dict(state_dict=model.state_dict()), path)
    return path


def save_family_teachers(family: Family, folder: str, num_teachers: int = 2) -> List[str]:
    """Checkpoints of ``num_teachers`` initialised models of the family (seeds 0, 1,
    ...) under ``folder`` (:func:`save_family_checkpoint`)."""
    return [save_family_checkpoint(family, folder, seed) for seed in range(num_teachers)]


def expected_outcome(family: Family, method: str) -> Optional[str]:
    """None when the family distils with ``method``, else a pattern of its refusal."""
    return family.refused or family.refused_methods.get(method)


def markdown_table() -> str:
    """The README's table of families x weightings (what the matrix asserts)."""
    names = {m.key: m.name.split(' (')[0] for m in METHOD_TABLE}
    header = ['task', 'family (zoo config)'] + [names[m] for m in MATRIX_METHODS] + ['note']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for family in FAMILIES.values():
        cells = ['runs' if expected_outcome(family, m) is None else 'refused'
                 for m in MATRIX_METHODS]
        lines.append(f'| {family.task} | {family.name} (`{family.config}`) | '
                     + ' | '.join(cells) + f' | {family.note} |')
    return '\n'.join(lines)


def run_matrix(tasks: dict, work_root: str, families: Optional[Sequence[str]] = None,
               methods: Sequence[str] = MATRIX_METHODS, iters: int = 2) -> List[dict]:
    """Run the matrix outside the tests: each (family, method) through mmengine's
    Runner on the task's generated data (written under ``<work_root>/data`` if absent).

    Returns one row per case: ``family``, ``task``, ``method``, ``outcome`` (``'runs'``,
    ``'refused'`` or ``'FAILED'``), ``detail`` (the message of a refusal or failure) and
    ``seconds`` (build and training).
    """
    import time

    from mmengine.logging import print_log
    from mmengine.runner import Runner
    from mmengine.utils import mkdir_or_exist
    chosen = [FAMILIES[name] for name in families] if families else list(FAMILIES.values())
    rows = []
    for family in chosen:
        task = tasks[family.task]
        data_root = osp.join(work_root, 'data', osp.basename(task.data_root))
        task.generate(data_root)
        teacher_dir = osp.join(work_root, 'teachers')
        mkdir_or_exist(teacher_dir)
        checkpoints = save_family_teachers(family, teacher_dir)
        for method in methods:
            work_dir = osp.join(work_root, 'runs', f'{family.name}_{method}'.replace(' ', '_'))
            cfg = family_kd_config(family, method, task.kd_config, task.data_options(data_root),
                                   checkpoints, work_dir, iters=iters)
            cfg.log_level = 'WARNING'
            start, outcome, detail = time.perf_counter(), 'runs', ''
            try:
                Runner.from_cfg(cfg).train()
            except (TypeError, ValueError, KeyError, RuntimeError) as error:
                refusal = expected_outcome(family, method)
                refused = refusal is not None and re.search(refusal, str(error))
                outcome, detail = ('refused' if refused else 'FAILED'), str(error).split('\n')[0]
            rows.append(dict(family=family.name, task=family.task, method=method,
                             outcome=outcome, detail=detail,
                             seconds=round(time.perf_counter() - start, 1)))
            print_log(f'{family.name} x {method}: {outcome} ({rows[-1]["seconds"]} s) {detail}',
                      logger='current')
    return rows
