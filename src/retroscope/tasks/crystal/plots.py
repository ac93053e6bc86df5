"""Evaluation plots of the crystal task, after Allsopp et al. (2025), Figs. 4-7."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retroscope.plots import figure, save


def bin_statistics(true: np.ndarray, pred: np.ndarray, bin_width: int = 10) -> dict:
    """Per bin of true N (width ``bin_width``, centred on multiples of it): count, mean
    inferred N, standard deviation of (pred - true), its percentage of the bin centre, and
    the RMS error."""
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    centres = np.round(true / bin_width) * bin_width
    rows = []
    for c in np.unique(centres):
        sel = centres == c
        err = pred[sel] - true[sel]
        several = sel.sum() > 1  # a spread needs two images; None (JSON null) otherwise
        rows.append({"bin": float(c), "n": int(sel.sum()), "mean_pred": float(pred[sel].mean()),
                     "mean_error": float(err.mean()),
                     "std": float(err.std(ddof=1)) if several else None,
                     "std_percent": float(100 * err.std(ddof=1) / c) if several and c > 0
                     else None,
                     "rms": float(np.sqrt(np.mean(err**2)))})
    return {"bin_width": bin_width, "bins": rows}


def count_by_bin(true, pred, path, label: str = "n_ca", bin_width: int = 10,
                 n_outliers: int = 10, unit: str = "ions") -> Path:
    """Inferred vs true ion number (Fig. 4): per bin the mean (bar centre) and +-1 standard
    deviation (bar height), the ``n_outliers`` largest deviations above and below as circles,
    and the identity line, with a legend."""
    from matplotlib.lines import Line2D

    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    stats = bin_statistics(true, pred, bin_width)
    fig, (ax,) = figure(1, 1, (5.5, 4.5))
    for row in stats["bins"]:
        sd = row["std"] or 0.0
        ax.add_patch(_rect(row["bin"] - 0.4 * bin_width, row["mean_pred"] - sd,
                           0.8 * bin_width, max(2 * sd, 0.5)))
        sel = np.round(true / bin_width) * bin_width == row["bin"]
        err = pred[sel] - true[sel]
        order = np.argsort(err)
        pick = np.concatenate([order[:n_outliers], order[-n_outliers:]])
        ax.plot(true[sel][pick], pred[sel][pick], "o", mfc="none", mec="k", ms=3, lw=0.5)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "-", color="0.4", lw=0.8)
    rms_pct = 100 * np.sqrt(np.mean(((pred - true) / np.where(true > 0, true, np.nan)) ** 2))
    ax.set_xlabel(f"true {label} ({unit})")
    ax.set_ylabel(f"inferred {label} ({unit})")
    ax.legend(handles=[
        _rect(0, 0, 1, 1),
        Line2D([], [], ls="none", marker="o", mfc="none", mec="k", ms=4),
        Line2D([], [], color="0.4", lw=0.8)],
        labels=[f"mean \u00b1 1 s.d. per bin of {bin_width}",
                f"the {n_outliers} largest errors each way per bin", "inferred = true"],
        fontsize=7, loc="upper left")
    ax.set_title(f"{len(true)} images; RMS error {np.sqrt(np.mean((pred - true) ** 2)):.2f} "
                 f"({rms_pct:.2f}%)", fontsize=9)
    ax.set_xlim(lo - bin_width, hi + bin_width)
    ax.set_ylim(lo - bin_width, hi + bin_width)
    return save(fig, path)


def _rect(x, y, w, h):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor="#f4a6c0", edgecolor="#c2185b", lw=0.5)


def outlier_gallery(images, true, pred, path, n: int = 8) -> Path:
    """The images with the largest positive and negative errors (Fig. 5)."""
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    err = pred - true
    order = np.argsort(err)
    pick = list(order[-(n // 2):][::-1]) + list(order[: n // 2])
    fig, axes = figure(2, max(1, n // 2), (1.8, 2.4))
    for ax, i in zip(axes, pick):
        ax.imshow(np.asarray(images[i], dtype=np.float32), cmap="gray")
        ax.set_title(f"N={true[i]:.0f} -> {pred[i]:.0f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return save(fig, path)
