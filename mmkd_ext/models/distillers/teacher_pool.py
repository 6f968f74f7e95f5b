"""The frozen teachers of a distiller: building, freezing and running them."""
from contextlib import contextmanager, nullcontext
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import revert_sync_batchnorm

from mmkd_ext.models.task_views.base import BaseTaskView
from mmkd_ext.utils.checkpoint import load_model_weights
from mmkd_ext.utils.model_builder import build_model
from mmkd_ext.utils.normalization import build_input_converter
from mmkd_ext.utils.recorder import OutputRecorder
from .model_entry import ModelEntry

#: ``teacher_autocast`` option -> autocast dtype.
AUTOCAST_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}

Autocast = Union[None, str, torch.dtype]


class TeacherPool:
    """K frozen teachers and how they run, for :class:`MultiTeacherDistiller`.

    On construction each teacher entry is built in its own library's scope, SyncBN
    is reverted to plain BN, its checkpoint is loaded, it is frozen
    (``requires_grad=False``, eval mode) and, with ``channels_last``, put in that
    memory format. An input converter per teacher maps a batch normalised for the
    student to the teacher's normalisation.

    A teacher of the student's library is a *task teacher*: it runs up to the task
    view's head and gives logits, a task loss and features. A teacher of another
    library (an mmpretrain classifier for an mmdet student) is a *feature teacher*:
    it runs its ``extract_feat`` only and gives features (its head output is None);
    the pool needs at least one task teacher.

    The pool is deliberately not an ``nn.Module``: the teachers stay out of the
    distiller's state dict, optimizer and DDP wrapper. The distiller registers
    :attr:`input_converters` as its own submodule (state-dict keys
    ``input_converters.<k>.*``), moves the teachers with itself (:meth:`apply`) and
    keeps them in eval mode (:meth:`eval`).

    Running: :meth:`bind` tells the pool the task view and the teacher layers to
    record; :meth:`run_teacher` runs one teacher (what the distiller runs every step,
    and what the overhead benchmark times); :meth:`run` runs all of them with the
    pool's options, reusing outputs inside :meth:`reusing_outputs`.

    Args:
        entries: K >= 1 teacher entries (see :class:`ModelEntry`).
        data_preprocessor: the config's top-level data preprocessor, given to
            teachers defined by an inline model dict without one.
        student: the student model (its library and data preprocessor).
        student_scope: the student's library (``'mmpretrain'``, ``'mmdet'``, ...).
        channels_last: run the teachers in the channels-last memory format.
        autocast: ``'bf16'``, ``'fp16'`` or None: the teachers' autocast precision.
    """

    @staticmethod
    def check_options(entries: Sequence, autocast: Optional[str]) -> None:
        """Refuse an empty pool or an unknown ``autocast``. The pool checks on
        construction; the distiller also calls this before it builds the student,
        so that the error comes before that work."""
        if autocast not in (None, *AUTOCAST_DTYPES):
            raise ValueError(f"model.teacher_autocast must be None, 'bf16' or 'fp16', got "
                             f'{autocast!r}.')
        if not entries:
            raise ValueError('MultiTeacherDistiller needs at least one teacher.')

    def __init__(self, entries: Sequence, data_preprocessor: Optional[dict],
                 student: nn.Module, student_scope: str, channels_last: bool = False,
                 autocast: Optional[str] = None):
        self.check_options(entries, autocast)
        self.channels_last = channels_last
        self.autocast = autocast
        self.names: List[str] = []
        self.models: List[nn.Module] = []
        #: Per teacher: True for a feature teacher (another library's model).
        self.feature_only: List[bool] = []
        converters = []
        for idx, entry in enumerate(entries):
            config, checkpoint, name, cfg_options = ModelEntry.parse(entry)
            name = name or f't{idx}'
            if 'loss' in name or name in self.names:
                raise ValueError(f"Teacher name {name!r} must be unique and must not "
                                 "contain 'loss' (log keys with 'loss' are summed).")
            source = config if isinstance(config, str) else config.get('type')
            owner = f'teacher {idx} ({name!r}, config {source})'
            teacher, scope = build_model(config, data_preprocessor, cfg_options)
            if scope != student_scope and not callable(getattr(teacher, 'extract_feat', None)):
                raise ValueError(
                    f'model.teachers[{idx}]: {owner} is a model of {scope} '
                    f'({type(teacher).__name__}) without extract_feat, so it can be '
                    f'neither a teacher of the {student_scope} student\'s task nor a '
                    'feature teacher.')
            self.feature_only.append(scope != student_scope)
            # Frozen and in eval mode, SyncBN is plain BN (and needs no process group).
            teacher = revert_sync_batchnorm(teacher)
            load_model_weights(teacher, checkpoint, owner)
            teacher.requires_grad_(False)
            teacher.eval()
            converters.append(build_input_converter(
                student.data_preprocessor, teacher.data_preprocessor, owner))
            self.names.append(name)
            self.models.append(teacher)
        if all(self.feature_only):
            raise ValueError(
                f'model.teachers: every teacher is a model of another library than the '
                f"student's ({student_scope}): teachers of another task distil features "
                'only, and the weightings read the logits and task losses of teachers of '
                f"the student's task. Add at least one {student_scope} teacher.")
        if channels_last:
            self.to_memory_format(True)
        self.input_converters = nn.ModuleList(converters)
        self.task_view: Optional[BaseTaskView] = None
        self.layers: Tuple[str, ...] = ()
        self.recorders: List[OutputRecorder] = []
        self._cache: Optional[Dict[int, tuple]] = None

    def __len__(self) -> int:
        return len(self.models)

    @property
    def task_indices(self) -> List[int]:
        """Indices of the task teachers (the student's library), in config order."""
        return [k for k, only in enumerate(self.feature_only) if not only]

    @property
    def feature_indices(self) -> List[int]:
        """Indices of the feature teachers (another library), in config order."""
        return [k for k, only in enumerate(self.feature_only) if only]

    @property
    def options(self) -> dict:
        """The pool's own run options: ``dict(channels_last=..., autocast=...)``."""
        return dict(channels_last=self.channels_last, autocast=self.autocast)

    def bind(self, task_view: BaseTaskView, layers: Sequence[str] = ()) -> None:
        """Set what a teacher's run returns: the task view's head output and the
        feature maps of the teacher submodules ``layers`` (one recorder per teacher,
        also used by the distiller's probe at construction)."""
        self.task_view = task_view
        self.layers = tuple(layers)
        self.recorders = [OutputRecorder(t, self.layers, f'teacher {n!r}')
                          for t, n in zip(self.models, self.names)]

    # -------------------------------------------------------------- the models
    def to_memory_format(self, channels_last: bool) -> None:
        """Put every teacher's weights in the channels-last (or the contiguous)
        memory format."""
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for teacher in self.models:
            teacher.to(memory_format=memory_format)

    def apply(self, fn, *args, **kwargs) -> None:
        """``Module._apply`` on every teacher (the distiller's ``to``/``cuda``/``half``)."""
        for teacher in self.models:
            teacher._apply(fn, *args, **kwargs)

    def eval(self) -> None:
        """Every teacher in eval mode (dropout and drop-path off, BN statistics fixed)."""
        for teacher in self.models:
            teacher.eval()

    # ------------------------------------------------------------------ running
    def run_teacher(self, index: int, inputs: torch.Tensor, data_samples: Optional[list], *,
                    channels_last: bool, autocast: Autocast) -> Tuple[object, List[torch.Tensor]]:
        """Teacher ``index``'s forward on a batch, as the distiller runs it.

        The input conversion and the forward run under ``torch.inference_mode`` (no
        autograd bookkeeping at all), on channels-last inputs if ``channels_last``
        (the weights' format is :meth:`to_memory_format`'s) and under autocast in
        ``autocast`` precision (``'bf16'``, ``'fp16'``, a dtype or None). The outputs
        are then copied out of inference mode (autograd may save them for the
        backward of the KD terms), half precision cast to float32.

        Args:
            inputs: ``[B, C, H, W]``, normalised for the student.

        Returns:
            ``(head output, maps)``: the task view's raw head output (None for a
            feature teacher, which runs its ``extract_feat`` only) and the L
            recorded feature maps ``[B, C_t, H, W]`` of :attr:`layers`.
        """
        recorder = self.recorders[index]
        with torch.inference_mode(), _autocast(autocast, inputs.device.type):
            teacher_inputs = self.input_converters[index](inputs)
            if channels_last:
                teacher_inputs = teacher_inputs.contiguous(memory_format=torch.channels_last)
            with recorder:
                head = self.forward(index, teacher_inputs, data_samples)
            maps = self.task_view.flatten_features([recorder.outputs[n] for n in self.layers])
        return usable_by_autograd((head, maps))

    def forward(self, index: int, inputs: torch.Tensor, data_samples: Optional[list]):
        """Teacher ``index`` on inputs already in its normalisation, as is (no
        inference mode, no conversion): the task view's head output for a task
        teacher; for a feature teacher its ``extract_feat`` (the recorded layers are
        what is used), returning None."""
        teacher = self.models[index]
        if self.feature_only[index]:
            teacher.extract_feat(inputs)
            return None
        return self.task_view.teacher_forward(teacher, inputs, data_samples)

    def run(self, inputs: torch.Tensor, data_samples: Optional[list]) -> Tuple[list, list]:
        """Every teacher's :meth:`run_teacher` with the pool's options.

        Returns:
            ``(heads, maps)``: K head outputs and K lists of L maps.
        """
        if self._cache is not None and id(inputs) in self._cache:
            cached_inputs, outputs = self._cache[id(inputs)]
            if cached_inputs is inputs:  # the same tensor object, not a reused id
                return outputs
        heads, maps = [], []
        for index in range(len(self)):
            head, teacher_maps = self.run_teacher(index, inputs, data_samples, **self.options)
            heads.append(head)
            maps.append(teacher_maps)
        outputs = (heads, maps)
        if self._cache is not None:
            self._cache[id(inputs)] = (inputs, outputs)
        return outputs

    @contextmanager
    def reusing_outputs(self, known: Optional[tuple] = None):
        """Within the block :meth:`run` runs the teachers once per input tensor and
        reuses their outputs (look-ahead passes over the same batch).

        Args:
            known: ``(inputs, (heads, maps))``, outputs already computed for the
                tensor ``inputs`` (they must be the teachers' outputs on it).
        """
        previous = self._cache
        if previous is None:
            self._cache = {}
        if known is not None:
            inputs, outputs = known
            self._cache[id(inputs)] = (inputs, outputs)
        try:
            yield
        finally:
            self._cache = previous


def _autocast(option: Autocast, device_type: str):
    """Autocast in ``option``'s precision, or a no-op context for None."""
    if option is None:
        return nullcontext()
    dtype = AUTOCAST_DTYPES.get(option, option)
    return torch.autocast(device_type, dtype=dtype)


def usable_by_autograd(value):
    """Copies of the inference-mode tensors in a (nested) list, tuple or dict;
    half-precision ones (from autocast) become float32."""
    if isinstance(value, (list, tuple)):
        return type(value)(usable_by_autograd(v) for v in value)
    if isinstance(value, dict):
        return {k: usable_by_autograd(v) for k, v in value.items()}
    if not isinstance(value, torch.Tensor):
        return value
    if value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    return value.clone()
