"""The ``crystal`` task: ion Coulomb crystals in a linear Paul trap (Allsopp et al. 2025).

The physics is usable on its own: :mod:`.trap` (Mathieu parameters, secular frequencies,
species, trap presets), :mod:`.dynamics` (numba Coulomb forces, FIRE, Langevin, full-RF
Verlet), :mod:`.theory` (cold-fluid spheroid), :mod:`.formation` (crystal formation,
:func:`equilibrium_positions`), :mod:`.render` (fluorescence image), :mod:`.camera` (camera
noise and augmentation), :mod:`.lab` and :mod:`.lab_settings` (lab-image preprocessing and its
settings), :mod:`.baseline` (iterative simulated-image matching).
"""

from retroscope.tasks.crystal import camera as _camera  # registers the camera transforms
from retroscope.tasks.crystal.formation import equilibrium_positions, form_crystal
from retroscope.tasks.crystal.task import CrystalTask

TASK = CrystalTask()

__all__ = ["TASK", "CrystalTask", "equilibrium_positions", "form_crystal"]
