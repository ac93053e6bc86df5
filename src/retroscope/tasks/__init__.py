"""Tasks shipped with retroscope; importing this package registers them."""

from retroscope.core.task import register_task
from retroscope.tasks.diffraction import TASK as _diffraction

if _diffraction is not None:  # TODO(lead): remove once the task glue lands
    register_task(_diffraction)
