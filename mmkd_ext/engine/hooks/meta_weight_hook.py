"""MetaWeightHook: the bi-level update of MMKD's weight networks."""
import copy
import logging
import time
from contextlib import contextmanager
from typing import Optional, Tuple

import torch
from mmengine.dataset import ConcatDataset
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import print_log
from mmengine.registry import OPTIMIZERS

from mmkd_ext.engine.optimizers.hypergradient import APPROXIMATIONS, check_mode, meta_objective
from mmkd_ext.engine.optimizers.lookahead import mirror_optimizer
from mmkd_ext.engine.optimizers.second_order import (SecondOrderError, SecondOrderReport,
                                                     is_second_order_error)
from mmkd_ext.models.weighting.meta_weight_net import MetaWeightNet
from mmkd_ext.registry import HOOKS
from mmkd_ext.utils.batch_stats import reestimate_batch_norm_statistics
from mmkd_ext.utils.dist_utils import average_gradients, fill_missing_gradients, gather_rows
from mmkd_ext.utils.random_state import (capture_random_state, restore_random_state,
                                         seed_host_generators)
from .base import WeightingTrainerHook
from .quiz_cache import QuizCache


@contextmanager
def preserved_random_state():
    """Run a block, then put every RNG stream back as it was (python, numpy, the
    torch CPU generator and the current CUDA device's), so the block leaves
    training's random numbers unchanged."""
    state = capture_random_state()
    try:
        yield
    finally:
        restore_random_state(state)


@contextmanager
def isolated_random_state(seed: int):
    """:func:`preserved_random_state` with the python/numpy/torch-CPU generators
    seeded from ``seed`` inside the block, so extra data loading (with random
    augmentation) draws reproducibly and leaves training's streams as they were."""
    with preserved_random_state():
        seed_host_generators(seed)
        yield


@HOOKS.register_module()
class MetaWeightHook(WeightingTrainerHook):
    """Trains :class:`~mmkd_ext.models.weighting.MetaWeightNet` by bi-level optimisation.

    Every ``interval`` iterations, after the regular step:

    1. draw a quiz batch of ``quiz_batch_size`` samples from the hard buffer (first
       filled with the earliest training samples, then slots overwritten at random
       by samples the student gets wrong); ``use_hard_buffer=False`` uses the
       current batch;
    2. from the live student (and adapters) take ``inner_kd_steps`` differentiable
       steps on the weighted distillation terms, then ``inner_ce_steps`` on the task
       loss, mirroring the student optimizer (SGD, Adam or AdamW) with its current
       hyper-parameters and state (momentum buffers, moments, step count);
    3. take the hypergradient of the stepped student's task loss on the quiz batch
       with respect to the weight networks and one step of the meta optimizer (Adam
       by default).

    ``hypergradient`` chooses how step 3 differentiates through step 2
    (:mod:`~mmkd_ext.engine.optimizers.hypergradient`): ``'exact'`` back-propagates
    through every unrolled step (second derivatives); ``'first_order_task'`` takes
    the task-loss steps first-order; ``'finite_difference'`` takes no second
    derivative (DARTS-style: first-order steps, the outer gradient carried back
    through the optimizer's update rule, the mixed derivative as a central
    difference along a parameter perturbation of norm ``finite_difference_epsilon``);
    ``'finite_difference_hvp'`` also keeps the steps' curvature, as central
    differences of their gradients (Hessian-vector products) along the same
    perturbation. The log says at the start what a mode other than ``'exact'``
    approximates. The networks are :class:`~mmkd_ext.models.weighting.MetaWeightNet`.

    The teachers' outputs of the training steps are reused: when the quiz batch is
    the current batch, the training step's inputs and teachers' outputs are taken; a
    sample entering the hard buffer is kept with its inputs (as augmented in that
    step), data sample and teachers' outputs, up to ``quiz_cache_mb`` MiB
    (:class:`QuizCache`). A quiz batch whose samples are all kept (with inputs of one
    shape) is assembled from them and runs no teacher; otherwise its samples are
    loaded again through the train pipeline (a fresh augmentation) and the teachers
    run on them. The kept samples are dropped whenever a checkpoint is saved, so a
    resumed run continues exactly as an uninterrupted one (and never sees teachers'
    outputs from before the resume); the checkpoint schedule therefore changes which
    quiz batches are reloaded. In distributed runs a rank keeps the samples of its
    own batches only while its quiz block draws from every rank's, so the kept samples
    are switched off there and quiz batches from the buffer are reloaded. Logged: ``meta_quiz_reused`` (the share of quiz batches assembled
    without running the teachers); a warning says when ``quiz_cache_mb`` cannot hold
    the buffer.

    The nets' inputs (student logits and features) are detached, as in MMKD, so
    the hypergradient flows through the weights they output, not through how their
    inputs move along the unrolled steps.

    The look-ahead is functional: the live student, its BN statistics and the
    student optimizer's state are left bit-for-bit as they were. In distributed
    runs the hard buffer is shared (each step's samples are gathered from every
    rank), each rank draws its own block of quiz samples from it, and the nets'
    gradients are averaged over ranks, so every rank keeps identical nets and hook
    state. The meta optimizer, the hard buffer and the hook's RNG are saved in
    checkpoints, so ``--resume`` continues exactly, also in distributed runs.

    The hard buffer holds dataset indices, read from ``sample_idx`` in the data
    samples' metainfo (mmpretrain's ``PackInputs`` has it by default), and quiz
    samples are loaded through the train dataset's pipeline under the hook's own
    seeded RNG (a ``ConcatDataset`` is refused: its samples' ``sample_idx`` index the
    sub-datasets).

    Second derivatives: the look-ahead replaces ops without a second derivative by
    twice-differentiable equivalents (mmcv's RoIAlign, its CUDA focal loss and
    deformable attention, ``hardsigmoid``; see
    :mod:`~mmkd_ext.engine.optimizers.second_order`), takes a task-loss step through
    any other such op first-order, and refuses a distillation step through one. The
    first training batch is a probe: before the first step the look-ahead runs once
    on it (changing no training state, RNG streams included), so what cannot run is
    refused before training and what is substituted or first-order is logged then
    (each once; :attr:`second_order` holds it).

    The hook runs right after the optimizer step of its iteration, before the LR
    scheduler steps, so the look-ahead uses the learning rate of the step just
    taken; its time counts in the logged iteration time. Gradient clipping of the
    student's optimizer wrapper is not mirrored in the look-ahead (a warning says so).

    BN statistics at the end of training: after the last iteration the student's BN
    running statistics are re-estimated from its final weights on
    ``precise_bn_batches`` training batches (the plain average of their batch
    statistics; :func:`~mmkd_ext.utils.batch_stats.reestimate_batch_norm_statistics`),
    so the last checkpoint holds them; ``precise_bn_batches=0`` keeps the running
    averages. Why: the running statistics are an exponential average (momentum 0.1,
    about the last 20 batches) of batch statistics taken with earlier weights, and
    under MMKD the student's predictions are far more sensitive to their error than
    under a fixed weighting: on sklearn's digits (quick schedule, seed 0) 33% of its
    validation predictions change when they are re-estimated (22% for AVER), and its
    score goes from 36.7 to 45.8 (batch statistics: 46.9), where AVER's moves from
    40.6 to 39.4. The weights, the regular steps and the meta steps are unchanged.

    Logged: ``meta_loss`` (the outer task loss) and ``meta_time_share`` (the share of
    training wall time spent in meta steps).
    """
    weighting_type = MetaWeightNet
    checkpoint_key = 'meta_weight_hook'

    def __init__(self,
                 interval: int = 5,
                 buffer_size: int = 256,
                 quiz_batch_size: int = 64,
                 use_hard_buffer: bool = True,
                 inner_kd_steps: int = 2,
                 inner_ce_steps: int = 1,
                 optimizer: dict = dict(type='Adam', lr=1e-3, weight_decay=1e-4),
                 seed: int = 0,
                 precise_bn_batches: int = 128,
                 hypergradient: str = 'exact',
                 quiz_cache_mb: float = 256,
                 finite_difference_epsilon: float = 1e-2):
        if interval < 1 or inner_kd_steps < 0 or inner_ce_steps < 0 or precise_bn_batches < 0:
            raise ValueError('interval must be >= 1 and the inner step and precise_bn_batches '
                             'counts >= 0.')
        if use_hard_buffer and quiz_batch_size > buffer_size:
            raise ValueError(f'quiz_batch_size ({quiz_batch_size}) exceeds buffer_size '
                             f'({buffer_size}).')
        check_mode(hypergradient)
        if quiz_cache_mb < 0:
            raise ValueError(f'quiz_cache_mb must be >= 0 (got {quiz_cache_mb}).')
        if not finite_difference_epsilon > 0:
            raise ValueError('finite_difference_epsilon must be > 0 (got '
                             f'{finite_difference_epsilon}).')
        self.finite_difference_epsilon = finite_difference_epsilon
        self.hypergradient_mode = hypergradient
        self.cache = QuizCache(int(quiz_cache_mb * 2**20))
        self.interval = interval
        self.buffer_size = buffer_size
        self.quiz_batch_size = quiz_batch_size
        self.use_hard_buffer = use_hard_buffer
        self.inner_kd_steps = inner_kd_steps
        self.inner_ce_steps = inner_ce_steps
        self.optimizer_cfg = dict(optimizer)
        self.precise_bn_batches = precise_bn_batches
        self.generator = torch.Generator().manual_seed(seed)
        self.buffer = torch.zeros(0, dtype=torch.long)
        self.meta_seconds = 0.0
        self._train_seconds = 0.0
        self.meta_optimizer: Optional[torch.optim.Optimizer] = None
        self.second_order = SecondOrderReport()
        self._probed = False

    # ------------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        model = self.distiller(runner)
        self.meta_optimizer = OPTIMIZERS.build(
            dict(self.optimizer_cfg, params=model.weighting.parameters()))
        self._train_seconds = 0.0
        self.restore_on_resume(runner)
        loader = runner.train_dataloader
        self._dataset, self._collate = loader.dataset, loader.collate_fn
        if self.use_hard_buffer and isinstance(self._dataset, ConcatDataset):
            raise TypeError('MetaWeightHook cannot map sample_idx of a ConcatDataset back '
                            'to its samples; set use_hard_buffer=False.')
        quiz_blocks = self.quiz_batch_size * get_world_size()
        if self.use_hard_buffer and quiz_blocks > self.buffer_size:
            raise ValueError(
                f'MetaWeightHook: {get_world_size()} ranks draw quiz_batch_size='
                f'{self.quiz_batch_size} samples each from one hard buffer, which needs '
                f'buffer_size >= {quiz_blocks} (got {self.buffer_size}); raise buffer_size.')
        self.check_student_supported(model, runner.optim_wrapper)
        model.retain_teacher_outputs = True
        self.cache.clear()
        if get_world_size() > 1:  # a rank's quiz block mixes every rank's samples
            self.cache.disable()
        if self.hypergradient_mode != 'exact':
            print_log(f'MetaWeightHook: hypergradient={self.hypergradient_mode!r} '
                      f'approximates {APPROXIMATIONS[self.hypergradient_mode]}.',
                      logger='current', level=logging.WARNING)
        if getattr(runner.optim_wrapper, 'clip_grad_kwargs', None):
            print_log('MetaWeightHook: the look-ahead steps do not clip gradients as the '
                      "student's optim_wrapper does.", logger='current', level=logging.WARNING)
        self._iter_start = time.perf_counter()

    @staticmethod
    def check_student_supported(model, optim_wrapper) -> None:
        """Refuse, before training, what the look-ahead cannot mirror: an optimizer other
        than SGD/Adam/AdamW, several optimizers, or SyncBN (torch has no second
        derivative of its synchronised backward)."""
        if not isinstance(getattr(optim_wrapper, 'optimizer', None), torch.optim.Optimizer):
            raise TypeError('MetaWeightHook mirrors one student optimizer; got '
                            f'{type(optim_wrapper).__name__}: use a single OptimWrapper.')
        mirror_optimizer(optim_wrapper.optimizer, {})  # raises for unsupported optimizers
        if any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.student.modules()):
            raise TypeError(
                'MetaWeightHook differentiates twice through the student, which SyncBN '
                "does not support (torch): give the student plain BN, e.g. student=dict("
                "config=..., cfg_options={'backbone.norm_cfg': dict(type='BN', "
                "requires_grad=True), ...}) for every norm_cfg of its config.")

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._iter_start = time.perf_counter()
        if not self._probed and data_batch is not None:  # the first batch of this run
            self._probed = True
            model = self.distiller(runner)
            start = time.perf_counter()
            self.probe(model, runner.optim_wrapper.optimizer, data_batch)
            self.meta_seconds += time.perf_counter() - start

    def probe(self, model, optimizer: torch.optim.Optimizer, data_batch: dict) -> None:
        """Run the look-ahead and its hypergradient once on ``data_batch``, changing
        nothing: not the parameters, buffers or optimizer state (the look-ahead is
        functional), not the nets' gradients (taken with ``torch.autograd.grad``), not
        the RNG streams, the hook's generator or its buffer.

        Raises :class:`SecondOrderError` (naming the op and the fix) for what MMKD
        cannot differentiate; substituted ops and first-order steps are logged."""
        with preserved_random_state():
            data = self._preprocess(model, data_batch)
            with model.weighting.learning():
                _, surrogate = self.meta_objective(model, optimizer, data['inputs'],
                                                   data['data_samples'])
                nets = [p for p in model.weighting.parameters() if p.requires_grad]
                if surrogate.requires_grad:
                    self._backward(
                        lambda: torch.autograd.grad(surrogate, nets, allow_unused=True))

    # ------------------------------------------------------------ every step
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = self.distiller(runner)
        if not model.step_health.skipped:  # a non-finite step is skipped
            self._learn(runner, model, data_batch)
        if model.last_step is not None:  # not kept during the next step
            model.last_step.inputs = model.last_step.teacher_outputs = None
        if runner.iter + 1 >= runner.max_iters and self.precise_bn_batches:
            self.reestimate_student_statistics(model, runner.train_dataloader)

    def _learn(self, runner, model, data_batch: dict) -> None:
        """The hard buffer's update and, every ``interval`` iterations, the meta step."""
        if self.use_hard_buffer:
            self._update_buffer(model, data_batch)
        if (runner.iter + 1) % self.interval == 0:
            start = time.perf_counter()
            meta_loss = self._meta_step(runner, model, data_batch)
            self.meta_seconds += time.perf_counter() - start
            runner.message_hub.update_scalar('train/meta_loss', meta_loss)
        self._train_seconds += time.perf_counter() - self._iter_start
        runner.message_hub.update_scalar(
            'train/meta_time_share', self.meta_seconds / max(self._train_seconds, 1e-9))

    def reestimate_student_statistics(self, model, loader) -> int:
        """Re-estimate the student's BN running statistics from its current weights
        on up to ``precise_bn_batches`` batches drawn (shuffled, through the train
        pipeline, full batches) from the train dataset under the hook's seeded RNG;
        returns the number of batches. A loader of its own: the training loop's
        iterator (persistent workers share it) is not touched."""
        seed = int(torch.randint(2**31 - 1, (1, ), generator=self.generator)) + get_rank()
        with isolated_random_state(seed):
            order = torch.randperm(len(self._dataset)).tolist()
            size = loader.batch_size or self.quiz_batch_size
            chunks = [order[i:i + size] for i in range(0, len(order) - size + 1, size)]

            def batches():
                for chunk in chunks[:self.precise_bn_batches]:
                    data = model.data_preprocessor(
                        self._collate([self._dataset[i] for i in chunk]), True)
                    yield data['inputs'], data['data_samples']

            count = reestimate_batch_norm_statistics(
                model.student, batches(),
                lambda batch: model.student(batch[0], batch[1], mode='tensor'))
        if count:
            print_log(f"MetaWeightHook: the student's BN statistics re-estimated from its "
                      f'final weights on {count} training batches of {size}.', logger='current')
        else:
            print_log(f'MetaWeightHook: the train dataset has fewer than {size} samples, one '
                      "batch: the student's BN statistics stay the running averages.",
                      logger='current', level=logging.WARNING)
        return count

    def _sample_indices(self, data_batch: dict) -> torch.Tensor:
        try:
            return torch.tensor([s.metainfo['sample_idx'] for s in data_batch['data_samples']])
        except KeyError:
            raise KeyError("MetaWeightHook's hard buffer needs 'sample_idx' in the data "
                           "samples' metainfo: add it to the pack transform's meta_keys, "
                           'or set use_hard_buffer=False.') from None

    def _update_buffer(self, model, data_batch: dict) -> None:
        """Fill with the first samples; then misclassified samples replace random slots.

        In distributed runs the step's samples of every rank are gathered, so all
        ranks hold the same buffer (and draw the same random numbers)."""
        indices = self._sample_indices(data_batch)
        free = self.buffer_size - len(self.buffer)  # the same on every rank
        if free > 0:
            offset = self._local_offset(len(indices))  # this rank's rows in gathered ones
            self.buffer = torch.cat([self.buffer, gather_rows(indices)[:free]])
            local = list(range(min(len(indices), max(free - offset, 0))))
        else:
            batch = model.last_step.batch
            hard = model.task_view.hard_samples(batch.student_logits,
                                                batch.data_samples).cpu()
            rows = gather_rows(torch.stack([indices, hard.long()], dim=1))
            for index in rows[rows[:, 1].bool(), 0]:
                slot = torch.randint(self.buffer_size, (1, ), generator=self.generator)
                self.buffer[slot] = index
            local = hard.nonzero().flatten().tolist()
        self._keep_samples(model, indices, local)

    @staticmethod
    def _local_offset(count: int) -> int:
        """The number of gathered rows before this rank's (0 in a single process)."""
        if get_world_size() == 1:
            return 0
        sizes = gather_rows(torch.tensor([count]))
        return int(sizes[:get_rank()].sum())

    def _keep_samples(self, model, indices: torch.Tensor, rows: list) -> None:
        """Keep rows ``rows`` of the step's batch in the quiz cache, drop the samples
        that left the buffer."""
        step, cache = model.last_step, self.cache
        if step.teacher_outputs is not None and rows and cache.max_bytes:
            fresh = not cache.sample_bytes
            cache.put_batch(indices[rows].tolist(), rows, step.inputs,
                            step.batch.data_samples, step.teacher_outputs)
            if cache.refused:
                print_log(f'MetaWeightHook: quiz samples are loaded again: {cache.refused}.',
                          logger='current', level=logging.WARNING)
                cache.disable()
            elif fresh and cache.sample_bytes * self.buffer_size > cache.max_bytes:
                needed = cache.sample_bytes * self.buffer_size / 2**20
                print_log(f'MetaWeightHook: quiz_cache_mb={cache.max_bytes / 2**20:g} holds '
                          f'{cache.max_bytes // cache.sample_bytes} of the buffer\'s '
                          f'{self.buffer_size} samples, and a quiz batch is reused only '
                          'when all its samples are kept: most will be loaded again and '
                          f'their teachers run. About {needed:.0f} MiB hold them all.',
                          logger='current', level=logging.WARNING)
        cache.keep_only(self.buffer.tolist())

    @staticmethod
    def _preprocess(model, data_batch: dict) -> dict:
        """The distiller's preprocessing of a copy of ``data_batch``'s samples: batch
        augmentations (mmpretrain's Mixup/CutMix) write mixed labels into the data
        samples, which must not reach the training step's own preprocessing of the
        same batch (it would mix them twice)."""
        samples = data_batch.get('data_samples')
        return model.data_preprocessor(dict(data_batch, data_samples=copy.deepcopy(samples)),
                                       True)

    def _quiz_batch(self, model, data_batch: dict) -> Tuple[dict, Optional[tuple]]:
        """``quiz_batch_size`` samples from the hard buffer (the current batch while it
        holds fewer), and the teachers' outputs on them when known: ``(data,
        (inputs, (heads, maps)) or None)``. Rank ``r`` takes the ``r``-th block of one
        shared draw."""
        if not self.use_hard_buffer or len(self.buffer) < self.quiz_batch_size * get_world_size():
            step = model.last_step
            if step is not None and step.teacher_outputs is not None:  # the step's own
                data = dict(inputs=step.inputs,
                            data_samples=copy.deepcopy(step.batch.data_samples))
                return data, (step.inputs, step.teacher_outputs)
            return self._preprocess(model, data_batch), None
        order = torch.randperm(len(self.buffer), generator=self.generator)
        start = get_rank() * self.quiz_batch_size  # buffer_size >= Q * world_size
        picked = self.buffer[order[start:start + self.quiz_batch_size]].tolist()
        seed = int(torch.randint(2**31 - 1, (1, ), generator=self.generator))
        kept = self.cache.batch(picked)
        if kept is not None:
            inputs, samples, outputs = kept  # on the training device, as kept
            return dict(inputs=inputs, data_samples=samples), (inputs, outputs)
        with isolated_random_state(seed + get_rank()):
            data = self._collate([self._dataset[i] for i in picked])
        return model.data_preprocessor(data, True), None

    def _meta_step(self, runner, model, data_batch: dict) -> float:
        data, teacher_outputs = self._quiz_batch(model, data_batch)
        runner.message_hub.update_scalar('train/meta_quiz_reused',
                                         float(teacher_outputs is not None))
        self.meta_optimizer.zero_grad(set_to_none=True)
        outer = self.hypergradient(model, runner.optim_wrapper.optimizer,
                                   data['inputs'], data['data_samples'], teacher_outputs)
        fill_missing_gradients(model.weighting.parameters())  # the same list on every rank
        average_gradients(model.weighting.parameters())
        self.meta_optimizer.step()
        self.meta_optimizer.zero_grad(set_to_none=True)
        return outer

    def hypergradient(self, model, optimizer: torch.optim.Optimizer,
                      inputs: torch.Tensor, data_samples: list,
                      teacher_outputs: Optional[tuple] = None) -> float:
        """Accumulate the hypergradient (of :attr:`hypergradient_mode`) into the nets'
        ``.grad``; returns the outer loss.

        Args:
            inputs: ``[Q, C, H, W]``, the preprocessed quiz batch.
            teacher_outputs: ``(inputs, (heads, maps))`` when the teachers' outputs on
                ``inputs`` are known.
        """
        with model.weighting.learning():
            outer, surrogate = self.meta_objective(model, optimizer, inputs, data_samples,
                                                   teacher_outputs)
            if surrogate.requires_grad:
                self._backward(surrogate.backward)
        return outer.item()

    @staticmethod
    def _backward(backward) -> None:
        """Back-propagate the outer loss; an op the step audit could not see (e.g. a
        compiled autograd function that raises only when differentiated twice) is
        refused with the fix."""
        try:
            backward()
        except RuntimeError as error:
            if not is_second_order_error(error):
                raise
            raise SecondOrderError(
                "MMKD's hypergradient differentiates twice through the student's "
                f'look-ahead steps, and an op there has no second derivative: {error} '
                "Fix: replace the op in the student's config (mmkd_ext substitutes "
                "mmcv's RoIAlign, focal loss and deformable attention and torch's "
                'hardsigmoid and fused attention kernels: '
                'mmkd_ext.engine.optimizers.second_order.SUBSTITUTES), set '
                "hypergradient='finite_difference' (no second derivative), "
                'or distil this student with a weighting that does not differentiate '
                'through its steps (e.g. configs/_base_/methods/aver.py).') from error

    def meta_objective(self, model, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
                       data_samples: list, teacher_outputs: Optional[tuple] = None,
                       mode: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(outer loss, surrogate)`` of MMKD's objective with the hook's inner step
        counts; the surrogate's gradient is the hypergradient of ``mode`` (the hook's
        by default; :func:`~mmkd_ext.engine.optimizers.hypergradient.meta_objective`)."""
        return meta_objective(mode or self.hypergradient_mode, model, optimizer, inputs,
                              data_samples, self.inner_kd_steps, self.inner_ce_steps,
                              report=self.second_order, teacher_outputs=teacher_outputs,
                              epsilon=self.finite_difference_epsilon)

    # ------------------------------------------------------------ checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the hook's state; drop the kept quiz samples (not in checkpoints), so
        that a run resumed from this checkpoint continues as this one does."""
        super().before_save_checkpoint(runner, checkpoint)
        self.cache.clear()

    def state_dict(self) -> dict:
        return dict(optimizer=self.meta_optimizer.state_dict(), buffer=self.buffer.clone(),
                    generator=self.generator.get_state(), meta_seconds=self.meta_seconds,
                    train_seconds=self._train_seconds)

    def load_state_dict(self, state: dict) -> None:
        self.meta_optimizer.load_state_dict(state['optimizer'])
        self.buffer = state['buffer'].cpu().clone()
        self.generator.set_state(state['generator'].cpu())
        self.meta_seconds = float(state['meta_seconds'])
        self._train_seconds = float(state.get('train_seconds', 0.0))
