"""Serializable Keras layers of kerahep (keras.ops only; every backend).

Importing this package registers them with Keras' serialization
(``package="kerahep"``), so ``keras.saving.load_model`` finds them.
"""

from .transformer import PositionEmbedding, TransformerBlock  # noqa: F401
