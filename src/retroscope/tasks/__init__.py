"""The tasks shipped with retroscope, one folder each.

They are plugins like a lab's own: registered through the entry-point group
``retroscope.tasks`` in ``pyproject.toml`` and found by :mod:`retroscope.core.registry`. This
package imports none of them.
"""
