"""Second derivatives in MMKD's look-ahead.

MMKD's hypergradient differentiates through the student's unrolled steps, i.e.
through the gradients of the student's losses (``create_graph=True``). Some ops
have no usable second derivative:

- compiled ops whose backward is ``@once_differentiable`` (mmcv's ``RoIAlign``, its
  CUDA sigmoid focal loss and multi-scale deformable attention). Under
  ``create_graph`` such a backward either attaches an error to the gradient (raised
  only when the hypergradient is back-propagated) or, when its incoming gradient is
  a constant (a loss op, e.g. the focal loss), returns a gradient without a graph
  and raises nothing: the op's curvature silently drops out;
- torch ops whose backward has no derivative (``aten::hardsigmoid_backward``).

This module gives the look-ahead three things:

- :func:`twice_differentiable_ops`: a context manager that, inside the look-ahead
  only, replaces such ops by twice-differentiable equivalents (:data:`SUBSTITUTES`),
  each computing the original op's forward;
- :class:`SecondOrderAudit`: walks the autograd graph of each unrolled step and
  names the ops still without a second derivative (a task-loss step that has one is
  taken first-order, a distillation step is refused:
  :func:`~mmkd_ext.engine.optimizers.lookahead.lookahead_task_loss`);
- :class:`SecondOrderReport`: what was substituted and what went first-order,
  logged once per op.
"""
import logging
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch.autograd.function import once_differentiable
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode

from mmkd_ext.models.losses.focal import sigmoid_focal_loss

__all__ = [
    'SUBSTITUTES', 'Substitute', 'NotSubstituted', 'twice_differentiable_ops',
    'sigmoid_focal_loss_pytorch', 'hardsigmoid', 'hardswish', 'roi_align_pytorch',
    'grid_sample_pytorch', 'SecondOrderAudit', 'SecondOrderReport', 'SecondOrderError',
    'is_second_order_error', 'DISTILLATION', 'TASK_LOSS'
]

# The original torch functions, kept before any substitution.
_TORCH_HARDSIGMOID = F.hardsigmoid
_TORCH_HARDSWISH = F.hardswish
_TORCH_GRID_SAMPLE = F.grid_sample
_TORCH_SDPA = F.scaled_dot_product_attention


class NotSubstituted(Exception):
    """Raised by a substitute for arguments it does not cover: the original op runs
    (and, without a second derivative, is found by :class:`SecondOrderAudit`)."""


# --------------------------------------------------------------- substitutes
def sigmoid_focal_loss_pytorch(input: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                               alpha: float = 0.25, weight: Optional[torch.Tensor] = None,
                               reduction: str = 'mean') -> torch.Tensor:
    """mmcv's ``sigmoid_focal_loss`` (``mmcv.ops.SigmoidFocalLossFunction``, CUDA
    only, once differentiable) in PyTorch ops: mmdet's pure-PyTorch focal loss
    (``py_sigmoid_focal_loss``) with mmcv's arguments.

    Args:
        input: ``[N, C]`` logits.
        target: ``[N]`` labels in ``[0, C]``; ``C`` is the background (no class).
        weight: optional ``[C]``; each row's loss is scaled by the weight of its
            label (as mmcv's kernel does).
        reduction: ``'none'`` (``[N, C]``), ``'mean'`` (the sum divided by ``N``,
            mmcv's mean) or ``'sum'``.
    """
    num_classes = input.size(1)
    one_hot = F.one_hot(target, num_classes + 1)[:, :num_classes].type_as(input)
    loss = sigmoid_focal_loss(input, one_hot, alpha, gamma)
    if weight is not None:
        loss = loss * weight.index_select(0, target)[:, None]
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


def hardsigmoid(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``F.hardsigmoid`` as a clamp, ``relu6(x + 3) / 6``, differentiable twice
    (torch has no derivative of ``hardsigmoid_backward``). Always out of place: the
    result is returned (``inplace`` is accepted for the signature)."""
    return (input + 3).clamp(0, 6) / 6


def hardswish(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``F.hardswish`` as ``x * relu6(x + 3) / 6``, differentiable twice. Always out of
    place (``inplace`` is accepted for the signature)."""
    return input * (input + 3).clamp(0, 6) / 6


def _bilinear_axis(coord: torch.Tensor, size: int):
    """mmcv RoIAlign's bilinear neighbours along one axis (its kernel's rules): a
    sample beyond ``[-1, size]`` is empty, one in ``[-1, 0]`` reads the first pixel,
    one past the last pixel centre reads the last.

    Returns ``(low, high, w_low, w_high)``: indices and weights (0 for empty
    samples), shaped like ``coord``.
    """
    valid = ((coord >= -1) & (coord <= size)).to(coord.dtype)
    coord = coord.clamp(min=0)
    low = coord.floor().long()
    at_end = low >= size - 1
    low = torch.where(at_end, torch.full_like(low, size - 1), low)
    high = torch.where(at_end, low, low + 1)
    coord = torch.where(at_end, low.to(coord.dtype), coord)
    frac = coord - low.to(coord.dtype)
    return low, high, (1 - frac) * valid, frac * valid


def _roi_align_group(feat: torch.Tensor, height: int, width: int, batch: torch.Tensor,
                     start_h: torch.Tensor, start_w: torch.Tensor, bin_h: torch.Tensor,
                     bin_w: torch.Tensor, grid_h: int, grid_w: int, pooled: Tuple[int, int],
                     pool_mode: str, empty_value: float) -> torch.Tensor:
    """RoIAlign of ``G`` RoIs that share one sampling grid (``grid_h x grid_w``
    points per bin). ``feat`` is ``[N*H*W, C]`` (channels last); returns
    ``[G, PH, PW, C]``."""
    num, channels = batch.numel(), feat.size(1)
    ph, pw = pooled
    if grid_h == 0 or grid_w == 0:  # no sample: mmcv gives 0 (avg) / its initial max
        fill = 0.0 if pool_mode == 'avg' else empty_value
        return feat.new_full((num, ph, pw, channels), fill)
    dtype = start_h.dtype
    # As mmcv's kernel: start + p * bin + (i + 0.5) * bin / grid, in that order.
    iy = torch.arange(grid_h, dtype=dtype, device=feat.device) + 0.5
    ix = torch.arange(grid_w, dtype=dtype, device=feat.device) + 0.5
    py = torch.arange(ph, dtype=dtype, device=feat.device)
    px = torch.arange(pw, dtype=dtype, device=feat.device)
    y = (start_h[:, None, None] + py[None, :, None] * bin_h[:, None, None] +
         iy[None, None, :] * bin_h[:, None, None] / grid_h).reshape(num, -1)  # [G, PH*gh]
    x = (start_w[:, None, None] + px[None, :, None] * bin_w[:, None, None] +
         ix[None, None, :] * bin_w[:, None, None] / grid_w).reshape(num, -1)  # [G, PW*gw]
    y_low, y_high, wy_low, wy_high = _bilinear_axis(y, height)
    x_low, x_high, wx_low, wx_high = _bilinear_axis(x, width)
    base = (batch * (height * width))[:, None, None]
    value = 0
    for yi, wy in ((y_low, wy_low), (y_high, wy_high)):
        for xi, wx in ((x_low, wx_low), (x_high, wx_high)):
            index = base + yi[:, :, None] * width + xi[:, None, :]  # [G, PH*gh, PW*gw]
            corner = feat.index_select(0, index.reshape(-1)).reshape(*index.shape, channels)
            value = value + (wy[:, :, None] * wx[:, None, :]).to(feat.dtype)[..., None] * corner
    value = value.reshape(num, ph, grid_h, pw, grid_w, channels)
    if pool_mode == 'avg':
        return value.sum(dim=(2, 4)) / (grid_h * grid_w)
    return value.amax(dim=(2, 4)).clamp_min(empty_value)


def roi_align_pytorch(input: torch.Tensor, rois: torch.Tensor, output_size,
                      spatial_scale: float = 1.0, sampling_ratio: int = 0, pool_mode: str = 'avg',
                      aligned: bool = True) -> torch.Tensor:
    """mmcv's ``roi_align`` (``mmcv.ops.RoIAlignFunction``, once differentiable) by
    bilinear sampling with gathers, differentiable twice with respect to ``input``.

    Same semantics as mmcv's kernels: the half-pixel offset of ``aligned``, RoIs at
    least 1 pixel wide and high when not ``aligned``, ``sampling_ratio`` points per
    bin and axis or, for 0, ``ceil(roi size / output size)`` per RoI (RoIs are
    processed in groups of equal grids), mmcv's border rules, and ``'avg'`` or
    ``'max'`` pooling in each bin (an empty bin gives 0, or mmcv's initial maximum:
    -10000 on CPU, the lowest finite value elsewhere). As in mmcv there is no
    gradient with respect to ``rois``. Slower than mmcv's kernel and heavier: a group
    of ``G`` RoIs gathers ``G x PH*grid_h x PW*grid_w x C`` values per bilinear corner,
    which the second-order graph keeps (the look-ahead only).

    Args:
        input: ``[N, C, H, W]`` feature maps.
        rois: ``[R, 5]``: batch index, ``x1, y1, x2, y2`` in input-image pixels.
        output_size: ``PH`` or ``(PH, PW)``.

    Returns:
        ``[R, C, PH, PW]``.
    """
    if pool_mode not in ('avg', 'max'):
        raise ValueError(f"pool_mode must be 'avg' or 'max', got {pool_mode!r}.")
    pooled = _pair(output_size)
    num_images, channels, height, width = input.shape
    rois = rois.detach()
    if rois.numel() == 0:
        return input.new_zeros((0, channels, *pooled))
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * spatial_scale - offset
    start_h = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - start_w
    roi_h = rois[:, 4] * spatial_scale - offset - start_h
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1), roi_h.clamp(min=1)
    bin_h, bin_w = roi_h / pooled[0], roi_w / pooled[1]
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
    else:  # as mmcv: ceilf(roi_size / pooled_size), in float
        grid_h = (roi_h / pooled[0]).float().ceil().long().clamp(min=0)
        grid_w = (roi_w / pooled[1]).float().ceil().long().clamp(min=0)
    empty_value = -10000.0 if input.device.type == 'cpu' else torch.finfo(input.dtype).min
    feat = input.permute(0, 2, 3, 1).reshape(num_images * height * width, channels)
    batch = rois[:, 0].long()
    key = grid_h * (int(grid_w.max()) + 1) + grid_w
    order, outputs = [], []
    for value in torch.unique(key).tolist():
        idx = (key == value).nonzero(as_tuple=True)[0]
        gh, gw = int(grid_h[idx[0]]), int(grid_w[idx[0]])
        outputs.append(
            _roi_align_group(feat, height, width, batch[idx], start_h[idx], start_w[idx],
                             bin_h[idx], bin_w[idx], gh, gw, pooled, pool_mode, empty_value))
        order.append(idx)
    output = torch.cat(outputs).index_select(0, torch.cat(order).argsort())
    return output.permute(0, 3, 1, 2).contiguous()


def _unnormalize(coord: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    if align_corners:
        return (coord + 1) / 2 * (size - 1)
    return ((coord + 1) * size - 1) / 2


def grid_sample_pytorch(input: torch.Tensor, grid: torch.Tensor, mode: str = 'bilinear',
                        padding_mode: str = 'zeros',
                        align_corners: Optional[bool] = None) -> torch.Tensor:
    """``F.grid_sample`` of 4-D inputs by gathers, differentiable twice with respect
    to ``input`` and ``grid``: ``'bilinear'`` or ``'nearest'`` sampling, ``'zeros'``
    or ``'border'`` padding (other arguments raise :class:`NotSubstituted`).

    Args:
        input: ``[N, C, H, W]``.
        grid: ``[N, H_out, W_out, 2]``, ``(x, y)`` in ``[-1, 1]``.

    Returns:
        ``[N, C, H_out, W_out]``.
    """
    if input.dim() != 4 or mode not in ('bilinear', 'nearest') \
            or padding_mode not in ('zeros', 'border'):
        raise NotSubstituted
    align_corners = bool(align_corners)  # None: torch's default, False
    n, channels, height, width = input.shape
    out_h, out_w = grid.shape[1:3]
    x = _unnormalize(grid[..., 0], width, align_corners)
    y = _unnormalize(grid[..., 1], height, align_corners)
    if padding_mode == 'border':
        x, y = x.clamp(0, width - 1), y.clamp(0, height - 1)
    flat = input.reshape(n, channels, height * width)

    def gather(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        valid = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        index = yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)
        index = index.reshape(n, 1, out_h * out_w).expand(n, channels, out_h * out_w)
        values = flat.gather(2, index).reshape(n, channels, out_h, out_w)
        return values * valid[:, None].to(input.dtype)

    if mode == 'nearest':  # round half to even, as torch's nearbyint
        return gather(y.round().long(), x.round().long())
    x0, y0 = x.floor(), y.floor()
    wx1, wy1 = (x - x0)[:, None], (y - y0)[:, None]
    wx0, wy0 = 1 - wx1, 1 - wy1
    x0, y0 = x0.long(), y0.long()
    return (gather(y0, x0) * wy0 * wx0 + gather(y0, x0 + 1) * wy0 * wx1 +
            gather(y0 + 1, x0) * wy1 * wx0 + gather(y0 + 1, x0 + 1) * wy1 * wx1)


class _PytorchMultiScaleDeformableAttn:
    """Stands in for ``mmcv.ops.MultiScaleDeformableAttnFunction`` (a CUDA kernel with
    a once-differentiable backward): ``apply`` runs mmcv's PyTorch implementation,
    ``multi_scale_deformable_attn_pytorch`` (grid sampling), which mmcv itself uses
    on CPU."""

    @staticmethod
    def apply(value, spatial_shapes, level_start_index, sampling_locations,
              attention_weights, im2col_step):
        from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
        return multi_scale_deformable_attn_pytorch(value, spatial_shapes, sampling_locations,
                                                   attention_weights)


@lru_cache(maxsize=None)
def _torch_lacks_double_backward(name: str) -> bool:
    """Whether torch's own ``F.<name>`` has no second derivative (checked once on
    tiny CPU tensors; newer torch versions implement some of them)."""
    with torch.enable_grad():
        return _double_backward_fails(name)


def _double_backward_fails(name: str) -> bool:
    # Fixed values (no RNG draws: the check must not move training's random streams).
    x = torch.linspace(-2.5, 2.5, 9, dtype=torch.float64).reshape(1, 1, 3, 3)
    x.requires_grad_()
    scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    if name == 'scaled_dot_product_attention':
        query = x.reshape(1, 1, 3, 3)
        out = _TORCH_SDPA(query, query * 1.5, query * 0.5)
        inputs = (x, )
    elif name == 'grid_sample':
        grid = torch.tensor([-0.7, 0.3, 0.2, -0.4, 0.6, 0.1, -0.2, 0.5],
                            dtype=torch.float64).reshape(1, 2, 2, 2).requires_grad_()
        out = _TORCH_GRID_SAMPLE(x, grid, align_corners=False)
        inputs = (x, grid)
    else:
        original = {'hardsigmoid': _TORCH_HARDSIGMOID, 'hardswish': _TORCH_HARDSWISH}[name]
        out = original(x * 2)
        inputs = (x, )
    grads = torch.autograd.grad((out * scale).sum(), inputs, create_graph=True)
    try:
        torch.autograd.grad(sum(g.sum() for g in grads), (scale, ) + inputs, allow_unused=True)
    except RuntimeError as error:
        if is_second_order_error(error):
            return True
        raise
    return False


@dataclass(frozen=True)
class Substitute:
    """A twice-differentiable stand-in, set at ``module.attribute`` (where the model's
    code looks the op up at call time) inside :func:`twice_differentiable_ops`.

    ``needed`` says whether this torch/mmcv needs it; a module not imported is left
    alone (nothing then calls the op)."""
    op: str
    module: str
    attribute: str
    replacement: Callable
    description: str
    needed: Callable[[], bool] = lambda: True


#: The substitutes the look-ahead applies.
SUBSTITUTES: Tuple[Substitute, ...] = (
    Substitute('mmcv sigmoid_focal_loss (mmdet FocalLoss on CUDA)',
               'mmdet.models.losses.focal_loss', '_sigmoid_focal_loss', sigmoid_focal_loss_pytorch,
               "mmdet's pure-PyTorch sigmoid focal loss"),
    Substitute('mmcv sigmoid_focal_loss (mmseg FocalLoss on CUDA)',
               'mmseg.models.losses.focal_loss', '_sigmoid_focal_loss', sigmoid_focal_loss_pytorch,
               "mmdet's pure-PyTorch sigmoid focal loss"),
    Substitute('mmcv RoIAlign', 'mmcv.ops.roi_align', 'roi_align', roi_align_pytorch,
               'bilinear sampling by gathers (mmkd_ext roi_align_pytorch)'),
    Substitute('mmcv MultiScaleDeformableAttention (CUDA)', 'mmcv.ops.multi_scale_deform_attn',
               'MultiScaleDeformableAttnFunction', _PytorchMultiScaleDeformableAttn,
               "mmcv's multi_scale_deformable_attn_pytorch"),
    Substitute('torch hardsigmoid', 'torch.nn.functional', 'hardsigmoid', hardsigmoid,
               'the clamp relu6(x + 3) / 6', lambda: _torch_lacks_double_backward('hardsigmoid')),
    Substitute('torch hardswish', 'torch.nn.functional', 'hardswish', hardswish,
               'the clamp x * relu6(x + 3) / 6', lambda: _torch_lacks_double_backward('hardswish')),
    Substitute('torch grid_sample', 'torch.nn.functional', 'grid_sample', grid_sample_pytorch,
               'bilinear sampling by gathers (mmkd_ext grid_sample_pytorch)',
               lambda: _torch_lacks_double_backward('grid_sample')),
)


class _MathAttention(TorchFunctionMode):
    """Runs ``F.scaled_dot_product_attention`` on torch's math backend (matmuls and a
    softmax, twice differentiable; the fused CPU/CUDA kernels' backward has no
    derivative) and notes the substitution in ``used``.

    A function mode, not an attribute swap: mmpretrain's attention layers keep a
    reference to the function taken at construction."""
    op = 'torch scaled_dot_product_attention (fused kernels)'
    description = "torch's math backend (SDPBackend.MATH)"

    def __init__(self, used: Dict[str, str]):
        super().__init__()
        self.used = used

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _TORCH_SDPA:
            self.used[self.op] = self.description
            with sdpa_kernel(SDPBackend.MATH):
                return func(*args, **kwargs)
        return func(*args, **kwargs)


class _Recorded:
    """A substitute that notes in ``used`` when it replaced a call; for arguments it
    does not cover it calls the original op."""

    def __init__(self, substitute: Substitute, original, used: Dict[str, str]):
        self.substitute, self.original, self.used = substitute, original, used

    def __call__(self, *args, **kwargs):
        try:
            output = self.substitute.replacement(*args, **kwargs)
        except NotSubstituted:
            return self.original(*args, **kwargs)
        self.used[self.substitute.op] = self.substitute.description
        return output

    def apply(self, *args):  # stands in for a torch.autograd.Function
        try:
            output = self.substitute.replacement.apply(*args)
        except NotSubstituted:
            return self.original.apply(*args)
        self.used[self.substitute.op] = self.substitute.description
        return output


@contextmanager
def twice_differentiable_ops(substitutes: Optional[Sequence[Substitute]] = None,
                             used: Optional[Dict[str, str]] = None):
    """Replace, for the block, the ops of ``substitutes`` (by default
    :data:`SUBSTITUTES`) by their twice-differentiable equivalents; yields ``used``
    ({op: substitute}), filled as substitutes run.

    Not thread-safe (module attributes are swapped): meant for the look-ahead, which
    runs in the training thread.
    """
    used = {} if used is None else used
    swapped = []
    try:
        for substitute in SUBSTITUTES if substitutes is None else substitutes:
            module = sys.modules.get(substitute.module)
            if module is None or not hasattr(module, substitute.attribute) \
                    or not substitute.needed():
                continue
            original = getattr(module, substitute.attribute)
            setattr(module, substitute.attribute, _Recorded(substitute, original, used))
            swapped.append((module, substitute.attribute, original))
        if substitutes is None and _torch_lacks_double_backward('scaled_dot_product_attention'):
            with _MathAttention(used):
                yield used
        else:
            yield used
    finally:
        for module, attribute, original in reversed(swapped):
            setattr(module, attribute, original)


# ----------------------------------------------------------------- detection
_ONCE_DIFFERENTIABLE_CODE = once_differentiable(lambda ctx: None).__code__
#: Custom Functions of mmcv.ops whose backward is itself differentiable.
_TWICE_DIFFERENTIABLE_MMCV = frozenset({'FusedBiasLeakyReLUFunction'})
_SECOND_ORDER_ERRORS = re.compile(
    r'derivative for (\S+) is not implemented|differentiate twice|'
    r'double backwards?\b.*not (?:supported|implemented)', re.IGNORECASE)
DISTILLATION, TASK_LOSS = 'distillation', 'task-loss'
_STEP_OPTION = {DISTILLATION: 'inner_kd_steps', TASK_LOSS: 'inner_ce_steps'}


def is_second_order_error(error: BaseException) -> bool:
    """Whether ``error`` is torch's refusal to differentiate an op twice."""
    return bool(_SECOND_ORDER_ERRORS.search(str(error)))


def _once_differentiable_function(node) -> Optional[str]:
    """The custom autograd Function of a graph node if its backward is not
    differentiable: wrapped by ``once_differentiable``, or an mmcv op computed by a
    compiled kernel (not known to be differentiable twice)."""
    function = getattr(node, '_forward_cls', None)
    if function is None:
        return None
    backward = getattr(function, 'backward', None)
    name = f'{function.__module__}.{function.__qualname__}'
    if getattr(backward, '__code__', None) is _ONCE_DIFFERENTIABLE_CODE:
        return f'{name} (its backward is @once_differentiable)'
    if function.__module__.startswith('mmcv.ops') \
            and function.__name__ not in _TWICE_DIFFERENTIABLE_MMCV:
        return f'{name} (a compiled kernel without a second derivative)'
    return None


def _error_node_message(node) -> str:
    """The message an ``Error``/``NotImplemented`` graph node raises when reached."""
    num_inputs = len(getattr(node, '_input_metadata', ())) or 1
    for _ in range(2):  # without _input_metadata (older torch), the arity from the error
        try:
            node(*[torch.empty(0)] * num_inputs)
        except (RuntimeError, TypeError) as error:
            arity = re.search(r'expected (\d+) arguments', str(error))
            if arity is None:
                return str(error).strip().splitlines()[0]
            num_inputs = int(arity.group(1))
    return node.name()


class SecondOrderError(RuntimeError):
    """An op of the look-ahead cannot be differentiated twice where MMKD needs it."""


class SecondOrderAudit:
    """Finds, step by step, the ops of one look-ahead that have no second derivative.

    Each step's loss and gradients are walked in the autograd graph (nodes seen in
    an earlier step are not walked again): a node of a custom Function whose
    backward is once differentiable, and the error nodes torch leaves in a gradient
    for a backward without a derivative (``derivative for aten::... is not
    implemented``), name the op.

    Policy (:meth:`check`): a task-loss step with such an op is taken first-order (its
    gradient detached: the step's curvature is missing from the hypergradient, the
    rest is exact) and recorded in :attr:`first_order`; a distillation step is
    refused with :class:`SecondOrderError` (the weight networks' hypergradient flows
    only through the distillation steps' gradients).
    """

    def __init__(self):
        self._seen: Set[object] = set()
        self.first_order: Dict[str, List[str]] = {}

    def find(self, roots: Iterable[Optional[torch.Tensor]]) -> List[str]:
        """The ops without a second derivative in the graphs of ``roots`` not yet seen."""
        found: List[str] = []
        stack = [t.grad_fn for t in roots if t is not None and t.grad_fn is not None]
        while stack:
            node = stack.pop()
            if node in self._seen:
                continue
            self._seen.add(node)
            problem = _once_differentiable_function(node)
            if problem is None and node.name() in ('torch::autograd::NotImplemented',
                                                   'torch::autograd::Error'):
                message = _error_node_message(node)
                # An error of a once-differentiable Function: its forward node names it.
                if 'differentiate twice' not in message:
                    match = re.search(r'derivative for (\S+) is not implemented', message)
                    problem = (f'{match.group(1)} (torch implements no derivative of it)'
                               if match else message)
            if problem is not None and problem not in found:
                found.append(problem)
            stack.extend(next_node for next_node, _ in node.next_functions
                         if next_node is not None)
        return found

    @staticmethod
    def step_name(stage: str, step: int, num_steps: int) -> str:
        return f'{stage} step {step + 1} of {num_steps} ({_STEP_OPTION[stage]})'

    def check(self, stage: str, step: int, num_steps: int, loss: torch.Tensor,
              grads: Sequence[Optional[torch.Tensor]]) -> Sequence[Optional[torch.Tensor]]:
        """The step's gradients to take: as computed (exact), or detached."""
        ops = self.find([loss, *grads])
        if not ops:
            return grads
        return self._without_second_order(stage, step, num_steps, ops, grads)

    def failed(self, stage: str, step: int, num_steps: int, error: RuntimeError,
               first_order_grads: Callable[[], Sequence[Optional[torch.Tensor]]]):
        """A step whose ``create_graph`` backward itself raised ``error``."""
        ops = [str(error).strip().splitlines()[0]]
        grads = first_order_grads() if stage == TASK_LOSS else ()
        return self._without_second_order(stage, step, num_steps, ops, grads)

    def _without_second_order(self, stage, step, num_steps, ops, grads):
        name = self.step_name(stage, step, num_steps)
        if stage != TASK_LOSS:
            raise SecondOrderError(
                f"MMKD's {name} differentiates twice through the student, and "
                f"{'; '.join(ops)} has no second derivative and no twice-differentiable "
                'substitute in mmkd_ext.engine.optimizers.second_order.SUBSTITUTES. '
                "The weight networks' hypergradient flows through this step, so it "
                "cannot be taken first-order. Fix: replace the op in the student's "
                "config, add a Substitute for it, set the hook's "
                "hypergradient='finite_difference' (no second derivative; see "
                'mmkd_ext.engine.optimizers.hypergradient), or distil this student with a '
                'weighting '
                'that does not differentiate through its steps (e.g. '
                'configs/_base_/methods/aver.py).')
        self.first_order.setdefault(name, [])
        self.first_order[name] += [op for op in ops if op not in self.first_order[name]]
        return [None if g is None else g.detach() for g in grads]


@dataclass
class SecondOrderReport:
    """What look-aheads did about second derivatives, accumulated over calls:
    ``substituted`` ({op: its substitute}) and ``first_order`` ({step: [ops]});
    :meth:`log_new` logs each entry once."""
    substituted: Dict[str, str] = field(default_factory=dict)
    first_order: Dict[str, List[str]] = field(default_factory=dict)
    _logged: Set[Tuple[str, str]] = field(default_factory=set, repr=False)

    def update(self, substituted: Dict[str, str], audit: SecondOrderAudit) -> None:
        self.substituted.update(substituted)
        for step, ops in audit.first_order.items():
            self.first_order.setdefault(step, [])
            self.first_order[step] += [op for op in ops if op not in self.first_order[step]]

    def log_new(self) -> None:
        for op, replacement in self.substituted.items():
            if ('substituted', op) not in self._logged:
                self._logged.add(('substituted', op))
                print_log(f"MMKD look-ahead: {op} has no second derivative; it is replaced "
                          f'by {replacement} in the look-ahead steps (the same forward).',
                          logger='current', level=logging.INFO)
        for step, ops in self.first_order.items():
            for op in ops:
                if (step, op) not in self._logged:
                    self._logged.add((step, op))
                    print_log(
                        f'MMKD look-ahead: the {step} differentiates twice through {op}, '
                        'which has no second derivative and no twice-differentiable '
                        'substitute: the step is taken first-order (its gradient is '
                        'detached, so its curvature is missing from the hypergradient). '
                        'Set inner_ce_steps=0 to leave the step out, or replace the op in '
                        "the student's config.", logger='current', level=logging.WARNING)
