"""Readers (HDF5, CSV, NumPy, NanoAOD) that yield ``tf.data``; splits; synthetic twins."""
