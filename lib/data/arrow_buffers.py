"""Arrow arrays built from, and read into, numpy and bytes through their buffers.

``pa.array()``, ``pa.scalar()`` and ``Array.to_numpy()`` import pandas on their first call
(0.2 s, a fifth of the whole prep of 50,000 reviews); building the arrays from buffers
does not, and copies nothing.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def from_numpy(values: np.ndarray) -> pa.Array:
    """A numpy array of numbers as an Arrow array, without a copy."""
    values = np.ascontiguousarray(values)
    dtype = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(dtype, len(values), [None, pa.py_buffer(values)])


def mask(values: np.ndarray) -> pa.BooleanArray:
    """A numpy bool array as an Arrow boolean array (bit-packed), e.g. for ``filter``."""
    bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def _offsets(items: list[bytes], dtype: type) -> np.ndarray:
    offsets = np.zeros(len(items) + 1, dtype=dtype)
    np.cumsum([len(item) for item in items], out=offsets[1:])
    return offsets


def strings(values: list[str]) -> pa.StringArray:
    """A few Python strings as an Arrow ``string`` array."""
    data = [v.encode() for v in values]
    return pa.StringArray.from_buffers(
        len(data), pa.py_buffer(_offsets(data, np.int32)), pa.py_buffer(b"".join(data))
    )


def large_strings(contents: list[bytes]) -> pa.LargeStringArray:
    """Many valid UTF-8 byte strings as one ``large_string`` array (no Python str per row)."""
    return pa.LargeStringArray.from_buffers(
        len(contents), pa.py_buffer(_offsets(contents, np.int64)), pa.py_buffer(b"".join(contents))
    )


def byte_lengths(texts: pa.LargeStringArray) -> np.ndarray:
    """The length in bytes of each string of an array without nulls."""
    offsets = np.frombuffer(
        texts.buffers()[1], dtype=np.int64, count=len(texts) + 1, offset=texts.offset * 8
    )
    return np.diff(offsets)
