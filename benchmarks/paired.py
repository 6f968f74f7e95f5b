"""Paired comparisons of methods over seeds, with their intervals.

Runs of one seed are paired: every method's student starts from the same weights
and sees the same batches (data order and augmentation; ``RandomStateHook``), so
the per-seed difference of two methods measures the methods, not the seeds' luck.
A comparison is summarised by the mean of those differences and its 95% t-interval
over seeds (``n - 1`` degrees of freedom): the verdict. Where each run also kept
which validation images it got right, a paired bootstrap over the validation images
gives a second interval, of another uncertainty: how much the difference of these
trained students would move on another draw of validation images. It does not
hold the seed-to-seed variation of training, so it is the narrower one when
training varies more than the validation set's draw.

A difference whose t-interval holds 0 is reported as no difference.
"""
import math
import statistics
from typing import Dict, List, NamedTuple, Optional, Sequence

#: Confidence of every interval here.
CONFIDENCE = 0.95


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided ``confidence`` quantile of Student's t with ``df`` degrees of
    freedom (e.g. 4.303 for df=2, 2.776 for df=4 at 95%)."""
    from scipy.stats import t
    return float(t.ppf(0.5 + confidence / 2, df))


class Interval(NamedTuple):
    """A mean and its ``confidence`` interval ``[low, high]`` over ``n`` values."""
    mean: float
    low: Optional[float]   # None: fewer than 2 values, no interval
    high: Optional[float]
    n: int

    @property
    def half_width(self) -> Optional[float]:
        return None if self.low is None else (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)

    @property
    def verdict(self) -> str:
        """``'better'``, ``'worse'`` or ``'no difference'`` (the interval holds 0, or
        there is none)."""
        if not self.excludes_zero:
            return 'no difference'
        return 'better' if self.mean > 0 else 'worse'

    def format(self, spec: str = '+.2f', mark: str = ' *') -> str:
        """``'+1.23 [+0.40, +2.06]'``; ``mark`` appended where the interval excludes 0."""
        text = format(self.mean, spec)
        if self.low is None:
            return text + ' (n=1)'
        mark = mark if self.excludes_zero else ''
        return f'{text} [{format(self.low, spec)}, {format(self.high, spec)}]{mark}'


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` with its t-interval: ``mean +- t(n-1) * s / sqrt(n)``
    (``s`` the sample standard deviation)."""
    values = list(values)
    if not values:
        raise ValueError('t_interval needs at least one value.')
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, None, None, len(values))
    half = t_quantile(len(values) - 1, confidence) * statistics.stdev(values) / math.sqrt(
        len(values))
    return Interval(mean, mean - half, mean + half, len(values))


class Spread(NamedTuple):
    """A seed-to-seed standard deviation with its ``confidence`` interval, from ``df``
    degrees of freedom."""
    std: float
    low: float
    high: float
    df: int

    def format(self, spec: str = '.2f') -> str:
        """``'0.98 [0.71, 1.59], 18 df'``."""
        return (f'{format(self.std, spec)} [{format(self.low, spec)}, '
                f'{format(self.high, spec)}], {self.df} df')


def pooled_std(groups: Sequence[Sequence[float]],
               confidence: float = CONFIDENCE) -> Optional[Spread]:
    """The pooled standard deviation of ``groups`` (each the scores of one row over
    seeds): ``sqrt(sum_g sum_i (x_gi - mean_g)^2 / df)`` with ``df = sum_g (n_g - 1)``,
    and its chi-square interval ``[s sqrt(df / chi2_hi), s sqrt(df / chi2_lo)]``.

    One row's standard deviation over 3 seeds has 2 degrees of freedom: its 95%
    interval runs from 0.52 to 6.3 times itself, too wide to say whether a method's
    spread is under a point. Rows that share one spread (the distilled students of
    one task) pool their degrees of freedom. Groups of one value add none; None
    when no group has two.
    """
    groups = [list(g) for g in groups if len(g) > 1]
    df = sum(len(g) - 1 for g in groups)
    if not df:
        return None
    from scipy.stats import chi2
    squares = sum(sum((x - statistics.fmean(g)) ** 2 for x in g) for g in groups)
    std = math.sqrt(squares / df)
    tail = (1 - confidence) / 2
    return Spread(std, std * math.sqrt(df / chi2.ppf(1 - tail, df)),
                  std * math.sqrt(df / chi2.ppf(tail, df)), df)


def paired_difference(scores: Dict[int, float], reference: Dict[int, float],
                      confidence: float = CONFIDENCE) -> Optional[Interval]:
    """``scores - reference`` over the seeds both have (``{seed: score}``), as the
    mean difference with its t-interval over seeds; None without a common seed."""
    seeds = sorted(set(scores) & set(reference))
    if not seeds:
        return None
    return t_interval([scores[s] - reference[s] for s in seeds], confidence)


def bootstrap_difference(correct: Dict[int, Sequence[int]],
                         reference: Dict[int, Sequence[int]], resamples: int = 2000,
                         seed: int = 0, confidence: float = CONFIDENCE) -> Optional[Interval]:
    """Paired bootstrap over validation images of the top-1 difference (in points).

    Args:
        correct / reference: per seed, whether each validation image (in the
            validation set's order, the same images for every run) was classified
            correctly (0/1), for the method and for the reference.

    Each resample draws the validation images with replacement, the same draw for
    every seed and both methods, and takes the mean over seeds of the accuracy
    difference; the interval holds the central ``confidence`` of the resamples: the
    uncertainty of the validation set's draw for these trained students (not the
    seed-to-seed variation of training, which :func:`paired_difference` measures).
    None without a common seed or with images of unequal counts.
    """
    seeds = sorted(set(correct) & set(reference))
    sizes = {len(correct[s]) for s in seeds} | {len(reference[s]) for s in seeds}
    if not seeds or len(sizes) != 1:
        return None
    import numpy as np
    size = sizes.pop()
    # Per image: the difference, averaged over seeds (so one draw serves every seed).
    per_image = (np.asarray([correct[s] for s in seeds], dtype=np.float64)
                 - np.asarray([reference[s] for s in seeds], dtype=np.float64)).mean(0)
    rng = np.random.default_rng(seed)
    draws = np.concatenate([  # in chunks of 100 resamples: [100, size] indices each
        100.0 * per_image[rng.integers(0, size, (min(100, resamples - start), size))].mean(1)
        for start in range(0, resamples, 100)])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(100.0 * float(per_image.mean()), float(low), float(high), len(seeds))


def seed_scores(results: Sequence[dict]) -> Dict[int, float]:
    """``{seed: score}`` of finished runs (dicts with ``seed`` and ``score``)."""
    return {r['seed']: r['score'] for r in results if r.get('score') is not None}


def seed_correct(results: Sequence[dict]) -> Dict[int, List[int]]:
    """``{seed: per-image correctness}`` of finished runs that kept it."""
    return {r['seed']: r['correct'] for r in results if r.get('correct') is not None}
