"""Evaluation plots, written as PNG files, for learners and tasks alike.

:func:`figure` and :func:`save` are the building blocks a task's own plots use; the rest are
the shared figures (predicted against true, error histograms, accuracy against compute, image
grids). matplotlib is imported inside each function and figures are drawn on an explicit Agg canvas
(``matplotlib.backends.backend_agg.FigureCanvasAgg``), so importing this module is cheap and
never changes the pyplot backend of a notebook. Every function creates the parent folder of
``path`` and returns the written path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def figure(nrows: int = 1, ncols: int = 1, panel_size_in: tuple[float, float] = (4.0, 3.5)):
    """A figure of ``nrows`` x ``ncols`` panels (each ``panel_size_in`` inches) on an Agg
    canvas, with its axes as a flat array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel_size_in[0] * ncols, panel_size_in[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


#: fewest samples a quantile band is drawn from; below it the samples are shown as they are
MIN_BAND_SAMPLES = 20


def unit_label(unit: str | None) -> str:
    """An axis unit as a reader writes it: "dimensionless" for "1" or none."""
    return "dimensionless" if unit in (None, "", "1") else unit


def with_unit(value: float, unit: str | None) -> str:
    """``value`` to 3 significant digits with its unit, none for a dimensionless one."""
    return f"{value:.3g}" if unit_label(unit) == "dimensionless" else f"{value:.3g} {unit}"


def _finite(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains {np.count_nonzero(~np.isfinite(a))} non-finite values")
    return a


def predicted_vs_true(
    true: np.ndarray,
    pred: np.ndarray,
    names: Sequence[str],
    units: Sequence[str],
    path: str | Path,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    coverage: Sequence[float] | None = None,
    limits: np.ndarray | None = None,
) -> Path:
    """One panel per target: predicted against true value with the line y = x.

    ``true``, ``pred`` (and the optional interval bounds ``low``, ``high``, drawn as error
    bars, e.g. from :meth:`retroscope.train.uncertainty.ConformalCalibrator.interval`) have
    shape (n, d); ``names`` and ``units`` have d entries. Each panel states n, the RMSE and,
    with intervals, their measured coverage: ``coverage`` (d values) when the caller measured
    it otherwise (e.g. against the symmetry-equivalent truth), else the fraction of ``true``
    inside [low, high]. ``limits`` (d, 2): physical bounds of each target (a quaternion
    component within [-1, 1]); axes and error bars stay inside them.
    """
    true, pred = _finite("true", true), _finite("pred", pred)
    if true.ndim != 2 or true.shape != pred.shape:
        raise ValueError(f"true and pred must both be (n, d), got {true.shape}, {pred.shape}")
    d = true.shape[1]
    if len(names) != d or len(units) != d:
        raise ValueError(f"need {d} names and units, got {len(names)} and {len(units)}")
    if (low is None) != (high is None):
        raise ValueError("give both low and high, or neither")
    if low is not None:
        low, high = _finite("low", low), _finite("high", high)
        if low.shape != true.shape or high.shape != true.shape:
            raise ValueError(f"low and high must be {true.shape}, got {low.shape}, {high.shape}")
    if limits is None:
        limits = np.tile([-np.inf, np.inf], (d, 1))
    limits = np.asarray(limits, dtype=np.float64)
    ncols = min(d, 3)
    fig, axes = figure(math.ceil(d / ncols), ncols)
    for j in range(d):
        ax = axes[j]
        bound_lo, bound_hi = limits[j]
        if low is None:
            ax.scatter(true[:, j], pred[:, j], s=6, alpha=0.6, label="test sample")
        else:
            lo_j, hi_j = np.clip(low[:, j], bound_lo, bound_hi), np.clip(high[:, j], bound_lo,
                                                                        bound_hi)
            yerr = np.stack([pred[:, j] - lo_j, hi_j - pred[:, j]]).clip(0.0, None)
            ax.errorbar(true[:, j], pred[:, j], yerr=yerr, fmt="o", ms=2, alpha=0.6,
                        elinewidth=0.5, label="prediction with interval")
        lim = [min(true[:, j].min(), pred[:, j].min()), max(true[:, j].max(), pred[:, j].max())]
        ax.plot(lim, lim, "k--", lw=1, label="predicted = true")
        margin = 0.05 * (lim[1] - lim[0] or 1.0)
        view = (max(lim[0] - margin, bound_lo), min(lim[1] + margin, bound_hi))
        ax.set_xlim(*view)
        ax.set_ylim(*view)
        rmse = np.sqrt(np.mean((pred[:, j] - true[:, j]) ** 2))
        text = f"n = {len(true)}\nRMSE = {with_unit(rmse, units[j])}"
        if coverage is not None:
            text += f"\ncoverage = {coverage[j]:.1%}"
        elif low is not None:
            inside = np.mean((true[:, j] >= low[:, j]) & (true[:, j] <= high[:, j]))
            text += f"\ncoverage = {inside:.1%}"
        ax.text(0.04, 0.96, text, transform=ax.transAxes, va="top", fontsize=8)
        ax.set_xlabel(f"true {names[j]} ({unit_label(units[j])})")
        ax.set_ylabel(f"predicted {names[j]} ({unit_label(units[j])})")
        if j == 0:
            ax.legend(fontsize=7, loc="lower right")
    for ax in axes[d:]:
        ax.set_axis_off()
    return save(fig, path)


def error_histograms(
    errors: dict[str, np.ndarray], path: str | Path, xlabel: str, log: bool = True,
    unit: str = "", reference: dict[str, float] | None = None,
) -> Path:
    """Overlaid histograms of error samples, one per entry of ``errors``, with their medians.

    The layout of Stielow et al., Mach. Learn.: Sci. Technol. 2, 025011 (2021), Fig. 4a:
    e.g. ``{"mean": mean_rel_error_pct, "maximum": max_rel_error_pct}``, the mean and maximum
    over targets of the range-normalised error per test pattern (their Appendix C), in %.
    ``unit`` is written after each median in the legend; ``reference`` maps a label to the
    median error of guessing (the task's trivial answer) on the same samples, drawn as a
    dotted line. n is in the legend's title. ``log=True`` uses logarithmic bins and axis; it
    needs positive errors and raises otherwise.
    """
    if not errors:
        raise ValueError("errors is empty")
    data = {k: _finite(f"errors[{k!r}]", v).ravel() for k, v in errors.items()}
    for k, v in data.items():
        if v.size == 0:
            raise ValueError(f"errors[{k!r}] is empty")
        if log and np.any(v <= 0):
            raise ValueError(
                f"errors[{k!r}] has {np.count_nonzero(v <= 0)} values <= 0; use log=False"
            )
    lo = min(v.min() for v in data.values())
    hi = max(v.max() for v in data.values())
    if hi == lo:
        hi = lo + 1.0 if not log else lo * 10.0
    bins = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi, 50)
    fig, (ax,) = figure(panel_size_in=(5.0, 3.5))
    for k, v in data.items():
        _, _, patches = ax.hist(v, bins=bins, alpha=0.5,
                                label=f"{k}: median {with_unit(np.median(v), unit)}")
        ax.axvline(np.median(v), color=patches[0].get_facecolor(), ls="--", alpha=1.0)
    for k, value in (reference or {}).items():
        ax.axvline(value, color="k", ls=":", lw=1.2,
                   label=f"{k}: median {with_unit(value, unit)}")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test samples per bin")
    n = ", ".join(sorted({str(v.size) for v in data.values()}))
    # below the axes: a legend inside would cover the bars it explains
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize=8,
               title=f"n = {n} test samples", title_fontsize=8)
    return save(fig, path)


def accuracy_vs_compute(
    baseline: dict,
    network: Sequence[dict],
    path: str | Path,
    ylabel: str = "mean relative error (%)",
) -> Path:
    """Error against number of forward simulations: classical fit against networks.

    The layout of Stielow et al. (2021), Fig. 4b. ``baseline`` describes an iterative fit
    (e.g. Monte-Carlo simplex) as a function of the simulations it has run::

        {"n_simulations": [...], "median": [...], "q05": [...], "q95": [...],
         "label": "simplex fit", "n_patterns": 13}   # "label", "n_patterns" optional

    drawn as the median line with the 5-95 % quantile band; the band only from at least
    :data:`MIN_BAND_SAMPLES` patterns (fewer: the median alone, n in the legend). Each entry
    of ``network`` is one trained network::

        {"n_simulations": int, "median": float, "q05": float, "q95": float, "label": str,
         "training_simulations": float, "n": int}     # optional: default 0, unknown

    drawn at x = ``n_simulations`` (the training-set size) + ``training_simulations`` (the
    training time expressed in simulation-equivalents), with 5-95 % error bars (from at
    least :data:`MIN_BAND_SAMPLES` samples). Both axes are logarithmic.
    """
    for key in ("n_simulations", "median", "q05", "q95"):
        if key not in baseline:
            raise KeyError(f"baseline needs the key {key!r}, has {sorted(baseline)}")
    x = _finite("baseline['n_simulations']", baseline["n_simulations"])
    med, q05, q95 = (_finite(f"baseline[{k!r}]", baseline[k]) for k in ("median", "q05", "q95"))
    if not x.shape == med.shape == q05.shape == q95.shape or x.ndim != 1:
        raise ValueError("baseline arrays must be 1-D and of equal length")
    fig, (ax,) = figure(panel_size_in=(5.5, 4.0))
    n_base = baseline.get("n_patterns")
    label = baseline.get("label", "baseline (median)")
    line = ax.plot(x, med, label=label if n_base is None else f"{label}, n = {n_base}")[0]
    if n_base is None or n_base >= MIN_BAND_SAMPLES:
        ax.fill_between(x, q05, q95, color=line.get_color(), alpha=0.25,
                        label="5-95 % quantile")
    for i, net in enumerate(network):
        for key in ("n_simulations", "median", "q05", "q95", "label"):
            if key not in net:
                raise KeyError(f"network[{i}] needs the key {key!r}, has {sorted(net)}")
        xn = float(net["n_simulations"]) + float(net.get("training_simulations", 0.0))
        n_net = net.get("n")
        label = net["label"] if n_net is None else f"{net['label']}, n = {n_net}"
        if n_net is None or n_net >= MIN_BAND_SAMPLES:
            yerr = [[net["median"] - net["q05"]], [net["q95"] - net["median"]]]
            ax.errorbar([xn], [net["median"]], yerr=yerr, fmt="o", capsize=3, label=label)
        else:
            ax.plot([xn], [net["median"]], "o", label=label + " (median)")
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    # errors span a decade or two: label 1, 2, 5 of each decade as plain numbers
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("number of forward simulations")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return save(fig, path)


def image_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str],
    path: str | Path,
    ncols: int = 4,
    cmap: str = "viridis",
    colorbar: str = "",
) -> Path:
    """Images in a grid with one title each, e.g. the worst predictions next to the patterns
    simulated from their truth. Each image is (H, W) or single-channel (1, H, W); each panel
    has its own colour scale, with a colour bar labelled ``colorbar`` when given."""
    if len(images) != len(titles):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    if len(images) == 0:
        raise ValueError("no images to show")
    ncols = min(ncols, len(images))
    fig, axes = figure(math.ceil(len(images) / ncols), ncols, panel_size_in=(2.6, 2.8))
    for i, (image, title) in enumerate(zip(images, titles)):
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[0] == 1:
            image = image[0]
        if image.ndim != 2:
            raise ValueError(f"image {i} must be (H, W) or (1, H, W), got {image.shape}")
        shown = axes[i].imshow(image, cmap=cmap)
        axes[i].set_title(title, fontsize=8)
        if colorbar:
            fig.colorbar(shown, ax=axes[i], shrink=0.8).set_label(colorbar, fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(images):]:
        ax.set_axis_off()
    return save(fig, path)
