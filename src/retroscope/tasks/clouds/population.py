"""The simulated population of atom clouds: random clouds of each kind on a frame, their sizes,
shapes, peak ODs and positions drawn from the ranges the ``clouds`` task's shots are made of
(:func:`sample_clouds`; their column OD profiles are :mod:`.profiles`)."""

from __future__ import annotations

import math

import numpy as np

from retroscope.tasks.clouds.profiles import CLOUD_KINDS, Cloud

__all__ = ["sample_clouds"]


def sample_clouds(counts: dict[str, int], shape: tuple[int, int],
                  rng: np.random.Generator, od_scale: float = 1.0) -> list[Cloud]:
    """Random clouds of each kind on a (rows, cols) frame. Sizes are fractions of the smaller
    side S: MOT 1/e^2 radius 0.06-0.22 S, aspect 0.6-1, peak OD 0.15-1.5; ODT 0.08-0.35 S
    long, aspect 0.08-0.3 (1/e^2 minor radius at least 3 px), peak OD 0.3-3; BEC: thermal
    radius 0.05-0.15 S with peak OD 0.15-0.8 (a visible thermal wing, whose 1/e^2 ellipse is
    the label), Thomas-Fermi radii 0.3-0.8 of it and a condensate peak 1.5-6 times the thermal
    one (at most 3), so that the bimodal shape is visible; "other": a ring of radius
    0.08-0.3 S, aspect 0.7-1, 1/e^2 half-thickness 0.15-0.45 of the smaller radius (at least
    1.5 px), peak OD 0.2-2, half of them crescents (azimuthal decay 0.3-3). Centres lie within
    the middle 80% of the frame; angles are uniform."""
    rows, cols = shape
    side = min(rows, cols)
    clouds = []
    for kind in CLOUD_KINDS:
        for _ in range(int(counts.get(kind, 0))):
            theta = rng.uniform(-math.pi / 2, math.pi / 2)
            x0 = rng.uniform(0.1, 0.9) * cols
            y0 = rng.uniform(0.1, 0.9) * rows
            if kind == "MOT":
                wx = rng.uniform(0.06, 0.22) * side
                clouds.append(Cloud(kind, x0, y0, wx, wx * rng.uniform(0.6, 1.0), theta,
                                    od_scale * rng.uniform(0.15, 1.5)))
            elif kind == "ODT":
                wx = rng.uniform(0.08, 0.35) * side
                wy = max(3.0, wx * rng.uniform(0.08, 0.3))
                clouds.append(Cloud(kind, x0, y0, wx, wy, theta,
                                    od_scale * rng.uniform(0.3, 3.0)))
            elif kind == "other":
                wx = rng.uniform(0.08, 0.3) * side
                wy = wx * rng.uniform(0.7, 1.0)
                width = max(1.5, wy * rng.uniform(0.15, 0.45))
                crescent = rng.uniform(0.3, 3.0) if rng.random() < 0.5 else 0.0
                clouds.append(Cloud(kind, x0, y0, wx, wy, theta,
                                    od_scale * rng.uniform(0.2, 2.0), ring_width=width,
                                    crescent=crescent,
                                    crescent_angle=rng.uniform(-math.pi, math.pi)))
            else:
                wx = rng.uniform(0.05, 0.15) * side
                wy = wx * rng.uniform(0.6, 1.0)
                rx, ry = wx * rng.uniform(0.3, 0.8), wy * rng.uniform(0.3, 0.8)
                od_th = od_scale * rng.uniform(0.15, 0.8)
                clouds.append(Cloud(kind, x0, y0, wx, wy, theta, od_th, rx, ry,
                                    min(od_th * rng.uniform(1.5, 6.0), 3.0 * od_scale)))
    return clouds
