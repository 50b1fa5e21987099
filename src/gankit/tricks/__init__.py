"""Stabilization tricks by name (feature matching, minibatch discrimination, ...).

The registry is the switchboard a recipe's `tricks:` list is checked against.
"""

from gankit.registry import Registry

TRICKS = Registry("trick")
