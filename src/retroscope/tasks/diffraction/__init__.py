"""The ``diffraction`` task: wide-angle XUV scattering of nanoclusters (Stielow et al. 2020).

The physics is usable on its own: :mod:`.shapes` (clusters on a voxel grid), :mod:`.msft`
(multi-slice Fourier transform with absorption), :mod:`.symmetry` (icosahedral group,
fundamental domain, misorientation), :mod:`.baseline` (Monte-Carlo-simplex forward fit).
"""

from retroscope.tasks.diffraction.task import DiffractionTask

TASK = DiffractionTask()

__all__ = ["TASK", "DiffractionTask"]
