"""Functional model builders, one family per file.

Importing this package registers kerahep's serializable model classes with Keras
(:class:`~kerahep.models.mae.MaskedAutoencoder`, :class:`~kerahep.models.simclr.SimCLR`),
as importing :mod:`kerahep.layers` registers the layers, so a saved ``.keras`` file that
holds them loads with plain ``keras.saving.load_model`` after ``import kerahep.models``.
"""

from . import mae, simclr  # noqa: F401 - registers MaskedAutoencoder and SimCLR
