"""Streaming reader of the jet_ssl HDF5 files into ``tf.data``.

The files (their real layout, as the README's jet_ssl section gives it):

* ``Dataset_Specific_Unlabelled.h5``: ``jet`` ``(N, 125, 125, 8)`` float32;
* ``Dataset_Specific_labelled_full_only_for_2i.h5``: ``jet`` and the targets ``Y`` (0 QCD,
  1 top), ``m`` and ``pT`` (GeV), which may be stored 2-D ``(N, 1)`` and are reshaped here.

A jet image is 500 kB, so the 60,000-jet file is 30 GB: :class:`JetStream` never loads a
file. It reads *chunk-aligned* slices (whole HDF5 chunks, so each compressed chunk is
decompressed exactly once per pass), blocks of a few MB at a time, in a shuffled block
order each epoch, on ``data.decode_threads`` threads (one per core by default), mixes the
jets of a window of ``shuffle_buffer`` jets in NumPy and hands ``tf.data`` whole batches
(:mod:`kerahep.data.batches`). Peak memory is set by the block size, the mixing window and
the prefetch depth, not by the file size. Every block is checked for NaN and infinities as
it is read.

Decompression is the reader's main cost (about 0.5 ms of CPU per jet through h5py, which
competes with training on a small machine). For the usual layout (float32, whole images
per chunk, gzip as the only filter) the stream reads the compressed chunks themselves
(``read_direct_chunk``) and inflates them with the fastest zlib at hand: ``zlib_ng`` (a
dependency; about seven times the standard zlib's speed on these sparse images, a third
of h5py's reader CPU in all), else ``isal``, else :mod:`zlib` (then about h5py's cost).
Any other layout goes through h5py as usual.

The channels are, in order: track pT, dz, d0 (pT-weighted), ECAL, HCAL, pixel layers 1-3.

Example::

    info = inspect_jet_file("Dataset_Specific_labelled_full_only_for_2i.h5", labelled=True)
    targets = read_targets(info.path)
    stream = JetStream([(info.path, None)], targets=targets)
    ds = stream.dataset(batch_size=64, shuffle=True, seed=1)   # (jet, {"y", "m", "pt"})
"""


from .files import (
    CHANNELS,
    DEFAULT_BLOCK_BYTES,
    JET_KEY,
    JET_SHAPE,
    OUTPUTS,
    TARGET_KEYS,
    JetFileInfo,
    inspect_jet_file,
    open_jet_file,
    read_targets,
)
from .reads import direct_chunk_reader, inflate_function, plan_reads
from .stream import JetStream, channel_scales, surface_errors

__all__ = [
    "CHANNELS", "DEFAULT_BLOCK_BYTES", "JET_KEY", "JET_SHAPE", "OUTPUTS", "TARGET_KEYS", "JetFileInfo", "JetStream",
    "channel_scales", "direct_chunk_reader", "inflate_function", "inspect_jet_file", "open_jet_file", "plan_reads",
    "read_targets", "surface_errors",
]
