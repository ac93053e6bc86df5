"""The figure of one explanation: the network's input next to its attribution map, drawn with
the shared building blocks of :mod:`retroscope.plots` (``figure``, ``save``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retroscope.plots import figure, save


def attribution_plot(image: np.ndarray, attribution: np.ndarray, path: str | Path,
                     title: str = "", image_label: str = "network input (dimensionless)",
                     attribution_label: str = "attribution (network output units)") -> Path:
    """Two panels: ``image`` (the network input ``(C, H, W)``, its channel mean shown, with a
    colour bar labelled ``image_label``) and ``attribution`` ``(H, W)`` on a diverging colour
    scale centred on zero (colour bar ``attribution_label``); ``title`` above both. Returns
    the written PNG."""
    image = np.asarray(image, dtype=np.float64)
    attribution = np.asarray(attribution, dtype=np.float64)
    if image.ndim != 3 or attribution.shape != image.shape[1:]:
        raise ValueError(f"need an image (C, H, W) and an attribution (H, W) of the same size, "
                         f"got {image.shape} and {attribution.shape}")
    height, width = attribution.shape
    panel = (3.6, min(max(3.0 * height / width, 2.4), 6.0))
    fig, (left, right) = figure(1, 2, panel_size_in=panel)
    channels = "" if image.shape[0] == 1 else f" (mean of {image.shape[0]} channels)"
    shown = left.imshow(image.mean(axis=0), cmap="viridis")
    fig.colorbar(shown, ax=left, shrink=0.8).set_label(image_label + channels, fontsize=8)
    scale = float(np.abs(attribution).max()) or 1.0
    drawn = right.imshow(attribution, cmap="RdBu_r", vmin=-scale, vmax=scale)
    fig.colorbar(drawn, ax=right, shrink=0.8).set_label(attribution_label, fontsize=8)
    left.set_title("network input", fontsize=9)
    right.set_title("attribution", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("column (px)")
        ax.set_ylabel("row (px)")
    if title:
        fig.suptitle(title, fontsize=9)
    return save(fig, path)
