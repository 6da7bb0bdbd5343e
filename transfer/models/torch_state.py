"""PyTorch's legacy (non-zip) .pth files read without PyTorch: a state dict of NumPy arrays.

The legacy format (torch.save before 1.6, still what some weight packages ship) is a run of
pickles: a magic number, the protocol version, system info, the object itself (tensors refer
to storages by key, through pickle's persistent ids), the list of storage keys, then each
storage's element count (int64, little-endian) and raw bytes. The unpickler below builds
nothing but dicts, tuples and numbers: any class other than the few a state dict uses is
refused, so reading a file runs none of its code.
"""

import collections
import pickle
import struct

import numpy as np

from transfer.core.errors import PipelineError

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
HEADER_PICKLES = 3  # magic number, protocol version, system info


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, key, dtype):
        self.key, self.dtype = key, dtype


def _tensor(storage, offset, size, stride, *unused):
    """What torch._utils._rebuild_tensor_v2 is given: kept until the storages are read."""
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, persistent_id):
        kind, storage_type, key = persistent_id[:3]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        return _Storage(key, storage_type.dtype)


def read_state_dict(path):
    """{name: array} of a legacy .pth state dict; PipelineError for any other file."""
    try:
        with open(path, "rb") as file:
            for _ in range(HEADER_PICKLES):
                _Unpickler(file).load()
            state = _Unpickler(file).load()
            keys = _Unpickler(file).load()
            dtypes = {value[1].key: value[1].dtype for value in state.values() if _is_tensor(value)}
            storages = {}
            for key in keys:
                (count,) = struct.unpack("<q", file.read(8))
                dtype = dtypes.get(key, np.dtype(np.float32))
                data = file.read(count * dtype.itemsize)
                if len(data) != count * dtype.itemsize:
                    raise EOFError(f"storage {key} is cut short")
                storages[key] = np.frombuffer(data, dtype=dtype)
    except (OSError, EOFError, pickle.UnpicklingError, struct.error, AttributeError, ValueError) as error:
        raise PipelineError(f"cannot read {path} as a PyTorch state dict: {error}") from None
    arrays = collections.OrderedDict()
    for name, value in state.items():
        if not _is_tensor(value):
            raise PipelineError(f"cannot read {path}: {name} is not a tensor")
        _, storage, offset, size, stride = value
        flat = storages[storage.key][offset:]
        strides = [step * flat.itemsize for step in stride]
        arrays[name] = np.lib.stride_tricks.as_strided(flat, shape=size, strides=strides).copy()
    return arrays


def _is_tensor(value):
    return isinstance(value, tuple) and len(value) == 5 and value[0] == "tensor"
