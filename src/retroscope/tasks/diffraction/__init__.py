"""The ``diffraction`` task: wide-angle XUV scattering of nanoclusters (Stielow et al. 2020)."""

TASK = None
