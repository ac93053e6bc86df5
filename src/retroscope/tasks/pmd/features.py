"""Image features of the classical alternatives (Shvetsov-Shilovski & Lein 2023, Sec. V),
computed from the network's input images (n, 256, 128) in [0, 1].

- :func:`hog_features`: the histogram of oriented gradients with the paper's cells of 16 x 32
  pixels (16 along k_x, the rows, which resolves the two-centre fringes; 32 along k_y), 9
  unsigned orientations, blocks of 2 x 2 cells, L2-Hys block normalisation: 1620 values.
- :func:`dense_sift`: SIFT descriptors (Lowe 2004, 128 values each) on a regular grid of
  keypoints. The paper's keypoint detector finds only 15-20 points on some smooth maps
  (Sec. V); a fixed grid gives every map the same descriptors at the same places. The
  keypoints are upright (angle 0): the polarisation fixes the orientation of the maps, so
  rotation invariance would only throw information away.
"""

from __future__ import annotations

import numpy as np

#: HOG cell of Sec. V: rows (k_x) x columns (k_y), in pixels
HOG_CELL_PX = (16, 32)
#: spacing of the dense SIFT grid (pixels, both directions); the first point sits half a step in
SIFT_STEP_PX = 16
#: keypoint size: OpenCV's descriptor then spans 4 x 4 bins of 1.5 x 8 = 12 px around the point
SIFT_SIZE_PX = 8.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[0, 1] images -> 0..255 (the paper's 8-bit images; OpenCV's SIFT wants uint8)."""
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def hog_features(images: np.ndarray) -> np.ndarray:
    """(n, 1620) HOG vectors of (n, 256, 128) images (see the module docstring)."""
    from skimage.feature import hog

    return np.stack([hog(im, orientations=9, pixels_per_cell=HOG_CELL_PX, cells_per_block=(2, 2),
                         block_norm="L2-Hys", feature_vector=True) for im in images])


def dense_sift(images: np.ndarray) -> np.ndarray:
    """(n, keypoints, 128) SIFT descriptors of (n, h, w) images on the grid of
    :data:`SIFT_STEP_PX` (128 keypoints on 256 x 128), rows first."""
    import cv2

    sift = cv2.SIFT_create()
    h, w = images.shape[1:]
    half = SIFT_STEP_PX // 2
    grid = [cv2.KeyPoint(float(x), float(y), SIFT_SIZE_PX, 0.0)
            for y in range(half, h, SIFT_STEP_PX) for x in range(half, w, SIFT_STEP_PX)]
    out = []
    for im in to_uint8(images):
        kept, desc = sift.compute(im, grid)
        if len(kept) != len(grid):
            raise RuntimeError(f"SIFT kept {len(kept)} of {len(grid)} grid keypoints")
        out.append(desc)
    return np.stack(out)
