"""Tasks shipped with retroscope; importing this package registers them."""

from retroscope.core.task import register_task
from retroscope.tasks.diffraction import TASK as _diffraction

register_task(_diffraction)
from retroscope.tasks.crystal import TASK as _crystal

register_task(_crystal)
from retroscope.tasks.clouds import TASK as _clouds

register_task(_clouds)
