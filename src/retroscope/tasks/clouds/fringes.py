"""Fringe removal: the best reference probe frame for an atom frame (Ockeloen et al., PRA 82,
061606(R) (2010)).

Interference fringes move between the atom and the probe frame, so the shot's own probe frame
is a poor reference. Instead the reference is the linear combination ``sum_k c_k B_k`` of a basis
of probe frames that fits the atom frame best, in the least-squares sense, on the pixels without
atoms (``mask`` True); the fringes there are shared with the atom region. The basis is either
the (dark-subtracted) probe frames themselves or, with ``n_components``, their mean plus their
first principal components (PCA via SVD; Niu et al., Appl. Phys. Lett. 113, 144103 (2018)).
"""

from __future__ import annotations

import numpy as np

from retroscope.tasks.clouds.optical_depth import check_frames, optical_depth


class FringeRemover:
    """Least-squares reference frames from a set of probe frames.

    ``probes``: (K, H, W) probe frames without atoms, K >= 1. ``dark``: optional (H, W) dark
    frame, subtracted from the probes here and from the atom frame in :meth:`reference`;
    without it the caller passes dark-subtracted frames. ``n_components``: None to use the K
    frames as the basis, or 1 <= n <= K - 1 to use the probes' mean frame plus their first n
    principal components (n + 1 basis frames).
    """

    def __init__(self, probes: np.ndarray, n_components: int | None = None,
                 dark: np.ndarray | None = None) -> None:
        probes = np.asarray(probes, dtype=np.float64)
        if probes.ndim != 3 or probes.shape[0] < 1:
            raise ValueError(f"FringeRemover: probes must have shape (K, H, W) with K >= 1, "
                             f"got {probes.shape}")
        if not np.all(np.isfinite(probes)):
            raise ValueError("FringeRemover: probes contain non-finite pixels")
        self.shape: tuple[int, int] = probes.shape[1:]
        self.dark = None
        if dark is not None:
            self.dark = self._frame(dark, "dark")
            probes = probes - self.dark
        flat = probes.reshape(probes.shape[0], -1)
        if n_components is None:
            self.basis = flat
        else:
            k = flat.shape[0]
            if not (isinstance(n_components, int) and 1 <= n_components <= k - 1):
                raise ValueError(f"FringeRemover: n_components must be an integer in "
                                 f"[1, K - 1] = [1, {k - 1}], got {n_components!r}")
            mean = flat.mean(axis=0)
            _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
            self.basis = np.vstack([mean, vt[:n_components]])

    def _frame(self, frame: np.ndarray, name: str) -> np.ndarray:
        out = check_frames({name: frame}, "FringeRemover")[name]
        if out.shape != self.shape:
            raise ValueError(f"FringeRemover: {name} has shape {out.shape}, the probes have "
                             f"{self.shape}")
        return out

    def reference(self, atoms: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The dark-subtracted reference (H, W) for ``atoms``: the basis combination fitted by
        least squares (numpy.linalg.lstsq) to the (dark-subtracted) atom frame on the pixels
        where ``mask`` (bool, H x W) is True, i.e. the region without atoms."""
        signal = self._frame(atoms, "atoms")
        if self.dark is not None:
            signal = signal - self.dark
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.shape:
            raise ValueError(f"FringeRemover: mask has shape {mask.shape}, the probes have "
                             f"{self.shape}")
        use = mask.ravel()
        n_used, n_basis = int(np.count_nonzero(use)), self.basis.shape[0]
        if n_used < n_basis:
            raise ValueError(f"FringeRemover.reference: mask has {n_used} atom-free pixels, "
                             f"fewer than the {n_basis} basis frames")
        coef, *_ = np.linalg.lstsq(self.basis[:, use].T, signal.ravel()[use], rcond=None)
        return (coef @ self.basis).reshape(self.shape)


def od_with_fringe_removal(atoms: np.ndarray, probes: np.ndarray, dark: np.ndarray,
                           mask: np.ndarray, n_components: int | None = None,
                           min_counts: float = 1.0,
                           saturation_counts: float | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """``(od, flags)`` of :func:`~retroscope.tasks.clouds.optical_depth.optical_depth` with the
    probe frame replaced by the least-squares reference (:class:`FringeRemover`) built from
    ``probes`` (K, H, W) and fitted on the atom-free pixels ``mask``; ``dark`` is the shot's
    dark frame (H, W), subtracted from the atom and all probe frames."""
    remover = FringeRemover(probes, n_components=n_components, dark=dark)
    reference = remover.reference(atoms, mask) + remover.dark
    return optical_depth(atoms, reference, dark, min_counts=min_counts,
                         saturation_counts=saturation_counts)


def atom_free_mask(od: np.ndarray, threshold: float = 0.2, smooth_px: float = 4.0,
                   grow_px: int = 10) -> np.ndarray:
    """The pixels far from any atoms, where a reference probe can be fitted: the OD smoothed by
    a Gaussian of ``smooth_px`` stays below ``threshold``, with the atom region grown by
    ``grow_px`` pixels (a faint shot leaves the whole frame atom-free)."""
    from scipy import ndimage

    atoms = ndimage.gaussian_filter(np.asarray(od, dtype=np.float64), smooth_px) > threshold
    return ~ndimage.binary_dilation(atoms, iterations=grow_px) if atoms.any() else ~atoms
