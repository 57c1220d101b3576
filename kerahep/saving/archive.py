"""What a ``.keras`` archive declares, read without reading a weight: its members' sizes,
its configuration (parsed and walked, not built) and every weight's shape and dtype.

Each check compares a declaration with a :class:`~kerahep.saving.limits.ModelLimits` and
raises :class:`~kerahep.errors.DataError` naming the file, the limit and the
``--max-model-size`` that would accept it. Python's zipfile reads no more of a member
than its declared size, so declared sizes bound what Keras can read or unpack.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import struct
import zipfile

from ..errors import DataError
from .limits import MAX_DATASET_RATIO, MAX_DEPTH, MAX_RATIO, RATIO_FLOOR, ModelLimits, format_size

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS_H5 = "model.weights.h5"
WEIGHTS_NPZ = "model.weights.npz"
#: integers under these keys are identities or seeds, not sizes
NOT_SIZES = ("shared_object_id", "seed")
#: bytes of the zip central directory per member allowed (46 fixed, the rest for name and extra fields)
DIRECTORY_ENTRY = 46 + 1024


@dataclasses.dataclass(frozen=True)
class Declared:
    """One array the weights file declares: its path, shape, dtype and bytes declared and stored."""

    name: str
    shape: tuple
    dtype: str
    nbytes: int
    stored: int


def check_directory(path, fp, limits: ModelLimits) -> None:
    """Bound the archive before zipfile parses its table of contents (one object per member)."""
    size = os.fstat(fp.fileno()).st_size
    if size > limits.archive_bytes():
        raise DataError(path, "a .keras file within the model size limits",
                        f"a file of {format_size(size)}; {limits.hint('archive', size)}")
    end = getattr(zipfile, "_EndRecData", None)  # the standard library's reader of the end record
    record = end(fp) if end is not None else None
    if record is None:
        return  # not a zip archive: zipfile says so next
    members, directory = record[4], record[5]  # zipfile._ECD_ENTRIES_TOTAL, zipfile._ECD_SIZE
    if members > limits.objects or directory > limits.objects * DIRECTORY_ENTRY:
        raise DataError(path, "a .keras archive of a few members",
                        f"a table of contents of {members} members ({format_size(directory)}); "
                        f"{limits.hint('objects', members)}")


def check_members(path, zf: zipfile.ZipFile, limits: ModelLimits) -> None:
    """Refuse members that declare more than the limits, or far more than they store."""
    names = zf.namelist()
    if CONFIG not in names:
        raise DataError(path, f"a .keras archive with {CONFIG}", f"members {names[:8]}")
    others = 0
    for info in zf.infolist():
        declared, name = info.file_size, info.filename
        if declared > RATIO_FLOOR and declared > MAX_RATIO * max(info.compress_size, 1):
            raise DataError(path, f"archive members that store at least 1/{MAX_RATIO} of what they declare",
                            f"{name} declaring {format_size(declared)} from {format_size(info.compress_size)} "
                            f"stored (a decompression bomb)")
        if name in (WEIGHTS_H5, WEIGHTS_NPZ):
            if declared > limits.weights + limits.config:  # the config's share is room for HDF5's headers
                raise DataError(path, "a weights file within the model size limit",
                                f"{name} of {format_size(declared)}; {limits.hint('weights', declared)}")
        elif name in (CONFIG, METADATA):
            if declared > limits.config:
                raise DataError(path, f"a {name} within the configuration limit",
                                f"{name} of {format_size(declared)}; {limits.hint('config', declared)}")
        else:
            others += declared
    if others > limits.assets:
        raise DataError(path, "assets within the limit (Keras unpacks them to disk)",
                        f"{len(names)} members, {format_size(others)} besides the configuration and "
                        f"weights; {limits.hint('assets', others)}")


def read_config(path, zf: zipfile.ZipFile, limits: ModelLimits) -> dict:
    """``config.json`` parsed and walked: nesting, number of Keras objects, sizes it names."""
    raw = zf.read(CONFIG)  # its declared size was checked
    try:
        config = json.loads(raw)
    except RecursionError:
        raise DataError(path, f"a {CONFIG} of at most {MAX_DEPTH} levels",
                        f"{CONFIG} nested too deeply for Python's JSON reader (RecursionError)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"a {CONFIG} in JSON", f"{type(exc).__name__}: {exc}") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise DataError(path, f"a {CONFIG} describing a Keras model", f"a JSON {type(config).__name__}")
    check_structure(path, config, limits)
    return config


def check_structure(path, config: dict, limits: ModelLimits) -> None:
    """Walk the parsed configuration depth first, in memory proportional to its depth:
    nesting, Keras objects, values (100 per object allowed) and absurd sizes.

    No integer of the configuration (but identities and seeds) may exceed the weights
    limit in bytes: a layer dimension that large declares a variable larger than the limit.
    """
    objects = values = 0
    keys: list = []  # the path to the container being walked
    frames = [iter([("", config)])]
    while frames:
        item = next(frames[-1], None)
        if item is None:
            frames.pop()
            if keys:
                keys.pop()
            continue
        key, node = item
        values += 1
        if values > 100 * limits.objects:
            raise DataError(path, f"a {CONFIG} of at most {100 * limits.objects:.0f} values",
                            f"more; {limits.hint('objects', values / 100)}")
        if isinstance(node, (dict, list)):
            if len(keys) >= MAX_DEPTH:
                raise DataError(path, f"a {CONFIG} of at most {MAX_DEPTH} levels",
                                f"{CONFIG} nested deeper (at {where(keys, key)[:200]}...)")
            if isinstance(node, dict) and "class_name" in node:
                objects += 1
                if objects > limits.objects:
                    raise DataError(path, f"a {CONFIG} of at most {format_size(limits.objects, 'objects')}",
                                    f"more Keras objects than that; {limits.hint('objects', objects)}")
            frames.append(iter(node.items()) if isinstance(node, dict) else iter(enumerate(node)))
            keys.append(key)
        elif (isinstance(node, int) and not isinstance(node, bool) and abs(node) > limits.weights
              and not any(word in str(k) for k in (key, keys[-1] if keys else "") for word in NOT_SIZES)):
            raise DataError(path, f"layer sizes within the model size limit ({format_size(limits.weights)})",
                            f"{CONFIG}: {where(keys, key)} = {node}; {limits.hint('weights', abs(node))}")


def where(keys: list, key) -> str:
    """``config/layers/1/config/units``: the path of a value in the configuration."""
    return "/".join(str(k) for k in [*keys[1:], key])


def weight_declarations(path, zf: zipfile.ZipFile, limits: ModelLimits) -> list[Declared]:
    """Every array of the weights member with its declared and stored bytes; no data is read."""
    names = set(zf.namelist())
    name = WEIGHTS_H5 if WEIGHTS_H5 in names else WEIGHTS_NPZ if WEIGHTS_NPZ in names else None
    if name is None:
        return []  # Keras names what is missing
    with member_file(zf, zf.getinfo(name)) as f:
        declared = h5_declarations(path, f, limits) if name == WEIGHTS_H5 else npz_declarations(path, f, limits)
    total = sum(d.nbytes for d in declared)
    if total > limits.weights:
        big = max(declared, key=lambda d: d.nbytes)
        raise DataError(path, f"weights within the model size limit ({format_size(limits.weights)})",
                        f"{name} declaring {format_size(total)} in {len(declared)} arrays (the largest {big.name}, "
                        f"shape {big.shape}, {format_size(big.nbytes)}); {limits.hint('weights', total)}")
    for d in declared:
        if d.nbytes > RATIO_FLOOR and d.nbytes > MAX_DATASET_RATIO * d.stored:
            raise DataError(path, f"weights that store at least 1/{MAX_DATASET_RATIO} of what they declare",
                            f"{name}: {d.name} declaring shape {d.shape} {d.dtype} ({format_size(d.nbytes)}) with "
                            f"{format_size(d.stored)} stored (a shape bomb)")
    return declared


def h5_declarations(path, f, limits: ModelLimits) -> list[Declared]:
    """Walk the HDF5 file's groups (no links, no external or virtual storage, no variable-length data)."""
    import h5py

    out: list[Declared] = []
    try:
        h5 = h5py.File(f, "r")
    except OSError as exc:
        raise DataError(path, f"a readable {WEIGHTS_H5}", f"{type(exc).__name__}: {exc}") from None
    with h5:
        seen, stack = set(), [("", h5)]
        while stack:
            prefix, group = stack.pop()
            for key in group:
                name = f"{prefix}{key}"
                link = group.get(key, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise DataError(path, f"a {WEIGHTS_H5} of plain groups and datasets",
                                    f"{name}, a {type(link).__name__} (Keras refuses links)")
                obj = group[key]
                if obj.id in seen:
                    continue
                seen.add(obj.id)
                if isinstance(obj, h5py.Group):
                    stack.append((f"{name}/", obj))
                    continue
                out.append(h5_dataset(path, name, obj))
                if len(out) > limits.datasets:
                    raise DataError(path, f"a {WEIGHTS_H5} of at most {format_size(limits.datasets, 'datasets')}",
                                    f"more; {limits.hint('datasets', len(out))}")
    return out


def h5_dataset(path, name: str, ds) -> Declared:
    import h5py

    dtype = ds.dtype
    if dtype.hasobject or h5py.check_vlen_dtype(dtype) is not None:
        raise DataError(path, "numeric weights", f"{name} of variable-length type {dtype}")
    if ds.external or ds.is_virtual:
        raise DataError(path, "weights stored in the file itself",
                        f"{name} stored {'in ' + str(ds.external) if ds.external else 'as a virtual dataset'}")
    shape = tuple(int(n) for n in (ds.shape or ()))
    return Declared(name, shape, dtype.name, math.prod(shape) * dtype.itemsize, int(ds.id.get_storage_size()))


def npz_declarations(path, f, limits: ModelLimits) -> list[Declared]:
    """The ``.npy`` headers of an npz weights member (object arrays refused: they need pickle)."""
    import numpy as np

    out = []
    try:
        npz = zipfile.ZipFile(f)
        infos = npz.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(path, f"a readable {WEIGHTS_NPZ}", f"{type(exc).__name__}: {exc}") from None
    if len(infos) > limits.datasets:
        raise DataError(path, f"a {WEIGHTS_NPZ} of at most {format_size(limits.datasets, 'datasets')}",
                        f"{len(infos)}; {limits.hint('datasets', len(infos))}")
    for info in infos:
        try:
            with npz.open(info) as member:
                major, _ = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise DataError(path, f"arrays in {WEIGHTS_NPZ}", f"{info.filename}: {exc}") from None
        if dtype.hasobject:
            raise DataError(path, "numeric weights", f"{info.filename} of Python objects (it needs pickle)")
        shape = tuple(int(n) for n in shape)
        out.append(Declared(info.filename, shape, dtype.name, math.prod(shape) * dtype.itemsize, info.compress_size))
    return out


def member_file(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    """A seekable file of one member: a window onto the archive for a stored member (h5py
    seeks back and forth, which a zip stream can only do by reading again from the start),
    the decompressed bytes in memory otherwise (bounded by the member's checked size)."""
    if info.compress_type != zipfile.ZIP_STORED:
        with zf.open(info) as member:
            return io.BytesIO(member.read())
    fp = zf.fp
    fp.seek(info.header_offset)
    header = fp.read(30)  # the local file header: signature ... name length, extra length
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header of {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return MemberView(fp, info.header_offset + 30 + name_len + extra_len, info.file_size)


class MemberView(io.RawIOBase):
    """A read-only window of ``size`` bytes from ``start`` of an open binary file."""

    def __init__(self, fp, start: int, size: int):
        super().__init__()
        self.fp, self.start, self.size, self.pos = fp, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self.size - self.pos))
        if n == 0:
            return 0
        self.fp.seek(self.start + self.pos)
        data = self.fp.read(n)
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)
