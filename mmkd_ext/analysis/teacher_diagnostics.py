"""What room a teacher pool leaves a per-sample teacher weighting.

Run on a distillation config's val dataloader before distilling:

- each teacher's score with the config's val evaluator, from the teacher's own
  ``val_step`` (its data preprocessor and ``predict``): the numbers
  ``tools/test.py`` gives for that teacher on the same data;
- per-sample figures through the distiller's task view, with the teachers run as
  distillation runs them (:meth:`~mmkd_ext.models.distillers.TeacherPool.run`):
  pairwise top-1 agreement of the per-sample logits, each teacher's mean per-sample
  task loss, the share of samples whose best teacher is not the best teacher overall
  ("room for per-sample weighting") and the oracle that takes the best teacher of
  every sample (:func:`sample_statistics`).

The best teacher of a sample is the one with the lowest per-sample task loss; with
a classification view, where a sample is right or wrong, a correct teacher when the
best teacher overall (the most accurate one) is wrong. The best teacher overall is
the most accurate one (classification) or the one with the lowest mean per-sample
loss (other tasks, whose per-sample loss is the view's task-loss proxy).
"""
import copy
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner
from mmengine.utils import ProgressBar, mkdir_or_exist

from mmkd_ext.models.distillers import MultiTeacherDistiller
from mmkd_ext.models.task_views import ClassificationView

#: The headline metric of each library's evaluator, the first one present is shown.
PRIMARY_METRICS = ('accuracy/top1', 'coco/bbox_mAP', 'mIoU')
#: File names :func:`write_report` writes in its output directory.
REPORT_FILES = ('teacher_diagnostics.json', 'teacher_diagnostics.md',
                'teacher_diagnostics.png')


class DiagnosticsInputError(ValueError):
    """The config or the data cannot be diagnosed (the message says why)."""


def check_distiller_config(cfg: Config, source: str = 'The config') -> None:
    """Refuse (:class:`DiagnosticsInputError`) a config that is not a distillation
    config with a val dataloader and evaluator, saying what to pass."""
    model = cfg.get('model') or {}
    model_type = model.get('type') if isinstance(model, dict) else None
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        cls = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    if not (isinstance(cls, type) and issubclass(cls, MultiTeacherDistiller)):
        raise DiagnosticsInputError(
            f'{source} defines model.type={model_type!r}, not a mmkd_ext.MultiTeacherDistiller: '
            'the teacher diagnostics need a distillation config (its teachers, task view '
            'and val dataloader), e.g. configs/classification/distill/kd_aver_r18w8_shapes10.py. '
            'To score a single model use tools/test.py CONFIG CHECKPOINT.')
    for key in ('val_dataloader', 'val_evaluator'):
        if not cfg.get(key):
            raise DiagnosticsInputError(f'{source} has no {key}: the teachers are scored '
                                        'on the val dataloader with the val evaluator.')


def sample_statistics(losses: torch.Tensor, predictions: torch.Tensor,
                      correct: Optional[torch.Tensor] = None) -> dict:
    """Per-sample figures of K teachers on N samples (the pure statistics).

    Args:
        losses: ``[N, K]`` per-sample task loss of each teacher.
        predictions: ``[N, K]`` each teacher's per-sample top-1 class.
        correct: ``[N, K]`` bool, whether each teacher gets each sample right
            (classification), or None.

    Returns:
        dict of plain numbers and lists over the K teachers: ``agreement`` (``K x K``,
        share of samples with equal top-1), ``mean_loss``, ``accuracy`` (None without
        ``correct``), ``wins`` (share of samples where each teacher has the lowest
        loss), ``best_teacher`` (index), ``room`` (share of samples whose best teacher
        is not ``best_teacher``), ``oracle_loss`` / ``best_single_loss`` (mean of the
        per-sample lowest loss / the lowest mean loss), ``oracle_accuracy`` /
        ``best_single_accuracy`` (share of samples some teacher gets right / the best
        teacher's accuracy; None without ``correct``).
    """
    if losses.dim() != 2 or losses.shape != predictions.shape or not len(losses):
        raise ValueError(f'Expected [N, K] losses and predictions with N >= 1, got '
                         f'{tuple(losses.shape)} and {tuple(predictions.shape)}.')
    losses = losses.double()
    agreement = (predictions[:, :, None] == predictions[:, None, :]).double().mean(0)
    mean_loss = losses.mean(0)
    lowest = losses.min(1, keepdim=True).values
    wins = (losses == lowest).double()
    wins = (wins / wins.sum(1, keepdim=True)).mean(0)  # a tie shares the sample
    stats = dict(agreement=agreement.tolist(), mean_loss=mean_loss.tolist(),
                 wins=wins.tolist(), oracle_loss=lowest.mean().item(),
                 best_single_loss=mean_loss.min().item(), accuracy=None,
                 oracle_accuracy=None, best_single_accuracy=None)
    if correct is None:
        best = int(mean_loss.argmin())
        room = (losses[:, best] > lowest[:, 0]).double().mean()
    else:
        correct = correct.bool()
        accuracy = correct.double().mean(0)
        best = int(accuracy.argmax())
        room = (~correct[:, best] & correct.any(1)).double().mean()
        stats.update(accuracy=accuracy.tolist(),
                     oracle_accuracy=correct.any(1).double().mean().item(),
                     best_single_accuracy=accuracy[best].item())
    stats.update(best_teacher=best, room=room.item())
    return stats


def _float_metrics(metrics: dict) -> Dict[str, float]:
    """The evaluator's scalar metrics as floats (per-class lists and the like dropped)."""
    out = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _limit_to_seen_images(evaluator: Evaluator, img_ids: List) -> None:
    """After a cut-short run, make metrics that score every image of an annotation
    file (mmdet's ``CocoMetric``) score the images seen only."""
    for metric in evaluator.metrics:
        if img_ids and getattr(metric, 'img_ids', False) is None:
            metric.img_ids = list(img_ids)


def annotations_follow_resize(pipeline: Optional[Sequence[dict]]) -> bool:
    """Whether a data pipeline loads the annotations after resizing the image, as
    mmdet's test pipelines do: the ground-truth boxes are then in the original
    image's coordinates, not the network input's."""
    types = [str(t.get('type', '')) for t in pipeline or [] if isinstance(t, dict)]
    load = next((i for i, t in enumerate(types) if t.endswith('LoadAnnotations')), None)
    resize = next((i for i, t in enumerate(types) if 'Resize' in t), None)
    return load is not None and resize is not None and resize < load


def boxes_to_input_frame(data_samples: list) -> None:
    """Scale each sample's ground-truth boxes ``[M, 4]`` (``gt_instances.bboxes``) by
    its ``scale_factor`` into the network input's coordinates, which the task view's
    per-sample loss reads (the distiller sees training data, resized with its boxes).
    The samples must be copies (the student's data preprocessor makes them)."""
    for sample in data_samples:
        if 'gt_instances' not in sample or 'scale_factor' not in sample:
            continue
        boxes = sample.gt_instances.bboxes
        boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
        sx, sy = sample.metainfo['scale_factor'][:2]
        sample.gt_instances.bboxes = boxes * boxes.new_tensor([sx, sy, sx, sy])


def diagnose_teachers(cfg: Config, max_batches: Optional[int] = None,
                      device: Optional[str] = None, progress: bool = True) -> dict:
    """Score every teacher of a distillation config and compare them per sample.

    One pass over ``cfg.val_dataloader``: each batch goes through every teacher's
    ``val_step`` (fed to one val evaluator per teacher) and, preprocessed for the
    student, through :meth:`TeacherPool.run`; the task view gives the per-sample
    losses ``[B, K]`` (``sample_losses``) and logits ``[B, C]`` per teacher
    (``sample_logits``), and, with a :class:`ClassificationView`, the per-sample
    correctness (``hard_samples``).

    Args:
        cfg: a config whose ``model`` is a ``mmkd_ext.MultiTeacherDistiller``.
        max_batches: stop after this many val batches (scores are then those of the
            samples seen).
        device: where to run; CUDA when available by default.
        progress: show a progress bar.

    Returns:
        The report: ``teachers`` (names of the task teachers: feature teachers,
        models of another library, have no scores and are left out), ``task_view``,
        ``num_samples``,
        ``num_batches``, ``metric`` (the headline metric's key), ``scores``
        (``{teacher: {metric: value}}``) and ``per_sample``
        (:func:`sample_statistics`, lists in teacher order, ``best_teacher`` a name).
    """
    check_distiller_config(cfg)
    if max_batches is not None and max_batches < 1:
        raise DiagnosticsInputError(f'max_batches must be at least 1, got {max_batches}.')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        model_cfg = copy.deepcopy(cfg.model)
        if cfg.get('data_preprocessor') is not None:  # as MMEngine's runner does
            model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
        distiller = MODELS.build(model_cfg).to(device).eval()
        loader = Runner.build_dataloader(copy.deepcopy(cfg.val_dataloader))
        task = distiller.teacher_pool.task_indices  # feature teachers have no scores
        names = [distiller.teacher_names[k] for k in task]
        evaluators = [Evaluator(copy.deepcopy(cfg.val_evaluator)) for _ in task]
        for evaluator in evaluators:
            evaluator.dataset_meta = getattr(loader.dataset, 'metainfo', None)
        rescale = annotations_follow_resize(cfg.val_dataloader.dataset.get('pipeline'))
        collected = _run_batches(distiller, loader, evaluators, max_batches, progress,
                                 rescale)
        if not collected['num_samples']:
            raise DiagnosticsInputError('The val dataloader gave no samples: check '
                                        'val_dataloader.dataset (its data_root and split).')
        if collected['cut_short']:
            for evaluator in evaluators:
                _limit_to_seen_images(evaluator, collected['img_ids'])
        scores = {name: _float_metrics(evaluator.evaluate(collected['num_samples']))
                  for name, evaluator in zip(names, evaluators)}
    stats = sample_statistics(torch.cat(collected['losses']), torch.cat(collected['top1']),
                              torch.cat(collected['correct']) if collected['correct'] else None)
    stats['best_teacher'] = names[stats['best_teacher']]
    first = next(iter(scores.values()))
    metric = next((key for key in PRIMARY_METRICS if key in first), next(iter(first), None))
    return dict(teachers=names,
                task_view=type(distiller.task_view).__name__,
                num_samples=collected['num_samples'], num_batches=collected['num_batches'],
                metric=metric, scores=scores, per_sample=stats)


def _run_batches(distiller: MultiTeacherDistiller, loader, evaluators: Sequence[Evaluator],
                 max_batches: Optional[int], progress: bool, rescale_boxes: bool) -> dict:
    """The loop of :func:`diagnose_teachers`: feeds the evaluators and collects the
    per-sample ``[B, K]`` losses, top-1 classes and (classification) correctness
    (``rescale_boxes``: :func:`boxes_to_input_frame` first)."""
    view, pool = distiller.task_view, distiller.teacher_pool
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    bar = ProgressBar(total) if progress and total else None
    out = dict(losses=[], top1=[], correct=[], img_ids=[], num_samples=0, num_batches=0,
               cut_short=total < len(loader))
    with torch.no_grad():
        for index, data in enumerate(loader):
            if index == total:
                break
            task = pool.task_indices
            for teacher, evaluator in zip([pool.models[k] for k in task], evaluators):
                outputs = teacher.val_step(copy.copy(data))
                evaluator.process(data_samples=outputs, data_batch=data)
            out['img_ids'] += [s.metainfo['img_id'] for s in outputs if 'img_id' in s]
            prepared = distiller.data_preprocessor(copy.copy(data), False)
            samples = prepared['data_samples']
            if rescale_boxes:
                boxes_to_input_frame(samples)
            heads = [pool.run_teacher(k, prepared['inputs'], samples, **pool.options)[0]
                     for k in task]
            logits = [view.sample_logits(head) for head in heads]  # K x [B, C]
            out['losses'].append(view.sample_losses(heads, samples).cpu())
            out['top1'].append(torch.stack([x.argmax(1) for x in logits], dim=1).cpu())
            if isinstance(view, ClassificationView):
                out['correct'].append(torch.stack(
                    [~view.hard_samples(x, samples) for x in logits], dim=1).cpu())
            out['num_samples'] += len(samples)
            out['num_batches'] += 1
            if bar is not None:
                bar.update()
    if bar is not None:
        print()  # end the bar's line
    return out


# ------------------------------------------------------------------- reporting
def _percent(value: Optional[float]) -> str:
    return '' if value is None else f'{100 * value:.1f}%'


def format_markdown(report: dict, title: str = 'Teacher diagnostics') -> str:
    """The report of :func:`diagnose_teachers` as markdown tables: per teacher, the
    pairwise agreement and the per-sample weighting's room and oracle."""
    names, stats = report['teachers'], report['per_sample']
    metric = report['metric']
    classification = stats['accuracy'] is not None
    lines = [f'## {title}', '',
             f"{report['num_samples']} val samples ({report['num_batches']} batches), "
             f"task view {report['task_view']}.", '']
    header = ['teacher', f'val {metric}', 'mean per-sample loss']
    header += ['per-sample top-1'] if classification else []
    header += ['lowest loss on (share of samples)']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for k, name in enumerate(names):
        score = report['scores'][name].get(metric)
        row = [name, '' if score is None else f'{score:.4g}', f"{stats['mean_loss'][k]:.4f}"]
        row += [_percent(stats['accuracy'][k])] if classification else []
        row += [_percent(stats['wins'][k])]
        lines.append('| ' + ' | '.join(row) + ' |')
    lines += ['', '| top-1 agreement | ' + ' | '.join(names) + ' |',
              '|' + '---|' * (len(names) + 1)]
    for name, row in zip(names, stats['agreement']):
        lines.append(f'| {name} | ' + ' | '.join(_percent(v) for v in row) + ' |')
    lines += ['', '| per-sample weighting | value |', '|---|---|',
              f"| best single teacher | {stats['best_teacher']} |",
              f"| room: samples whose best teacher is another | {_percent(stats['room'])} |"]
    if classification:
        lines.append(f"| oracle top-1 (best single) | {_percent(stats['oracle_accuracy'])} "
                     f"({_percent(stats['best_single_accuracy'])}) |")
    lines.append(f"| oracle mean loss (best single) | {stats['oracle_loss']:.4f} "
                 f"({stats['best_single_loss']:.4f}) |")
    return '\n'.join(lines) + '\n'


def plot_diagnostics(report: dict, path: str, title: str = 'Teacher diagnostics') -> str:
    """Save the pairwise agreement heatmap beside per-teacher bars of the val score
    and the share of samples each teacher is best on; returns ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names, stats, metric = report['teachers'], report['per_sample'], report['metric']
    size = max(3.0, 0.6 * len(names) + 2)
    fig, (heat, bars, wins) = plt.subplots(1, 3, figsize=(3 * size, size))
    agreement = stats['agreement']
    image = heat.imshow(agreement, vmin=0, vmax=1, cmap='viridis')
    heat.set_xticks(range(len(names)), names, rotation=45, ha='right')
    heat.set_yticks(range(len(names)), names)
    for i, row in enumerate(agreement):
        for j, value in enumerate(row):
            heat.text(j, i, f'{100 * value:.0f}', ha='center', va='center',
                      color='black' if value > 0.6 else 'white', fontsize=8)
    heat.set_title('top-1 agreement (%)')
    fig.colorbar(image, ax=heat, fraction=0.046)
    scores = [report['scores'][n].get(metric, float('nan')) for n in names]
    bars.bar(names, scores, color='#8c8c8c')
    bars.set_title(f'val {metric}')
    wins.bar(names, [100 * w for w in stats['wins']], color='#1f77b4')
    wins.set_title('lowest loss on (% of samples)')
    for ax in (bars, wins):
        ax.tick_params(axis='x', rotation=45)
    fig.suptitle(f"{title}: room {_percent(stats['room'])}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(report: dict, out_dir: str, title: str = 'Teacher diagnostics') -> List[str]:
    """Write :data:`REPORT_FILES` (JSON, markdown, plot) in ``out_dir``; returns their
    paths."""
    mkdir_or_exist(out_dir)
    paths = [osp.join(out_dir, name) for name in REPORT_FILES]
    with open(paths[0], 'w') as f:
        json.dump(report, f, indent=2)
    with open(paths[1], 'w') as f:
        f.write(format_markdown(report, title))
    plot_diagnostics(report, paths[2], title)
    print_log(f'Teacher diagnostics written to {", ".join(paths)}', logger='current')
    return paths
