"""The MIL blob storage file (an ``.mlpackage``'s ``weights/weight.bin``), read with numpy.

Why not coremltools' reader (``coremltools.libmilstoragepython._BlobStorageReader``, used by
``coremltools/converters/mil/frontend/milproto/load.py``, ``_load_file_value``): importing it runs
``coremltools/__init__.py`` (torch and more; see :mod:`.proto`). The format is small and documented in
coremltools' sources, ``mlmodel/src/MILBlob/Blob/StorageFormat.hpp`` (layout), ``BlobDataType.hpp`` (type codes)
and ``StorageReader.cpp`` (reading, sub-byte element counts):

* a 64-byte ``storage_header``: ``uint32 count, uint32 version (= 2)``, then reserved words;
* per blob, at the offset a ``BlobFileValue`` names, a 64-byte ``blob_metadata``: ``uint32 sentinel
  (0xDEADBEEF), uint32 mil_dtype, uint64 sizeInBytes, uint64 offset (of the data, from the file start),
  uint64 padding_size_in_bits``, then reserved words; all little-endian;
* sub-byte types (uint1/2/3/4/6, int4) are packed least-significant bits first; ``padding_size_in_bits`` of
  the last byte are unused. They are returned unpacked, one element per value, as coremltools' reader does.

The tests compare this reader with coremltools' on real artifacts (fp32, fp16, palettized).
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from toolchain.errors import ArtifactError

SENTINEL = 0xDEADBEEF
#: BlobDataType codes (BlobDataType.hpp) -> (numpy dtype, bits per element)
BLOB_DTYPES: dict[int, tuple[type, int]] = {
    1: (np.float16, 16), 2: (np.float32, 32), 3: (np.uint8, 8), 4: (np.int8, 8), 6: (np.int16, 16),
    7: (np.uint16, 16), 8: (np.int8, 4), 9: (np.uint8, 1), 10: (np.uint8, 2), 11: (np.uint8, 4), 12: (np.uint8, 3),
    13: (np.uint8, 6), 14: (np.int32, 32), 15: (np.uint32, 32),
}
_METADATA = np.dtype([("sentinel", "<u4"), ("dtype", "<u4"), ("size", "<u8"), ("offset", "<u8"),
                      ("padding_bits", "<u8"), ("reserved", "<u8", (4,))])
_HEADER = np.dtype([("count", "<u4"), ("version", "<u4"), ("reserved", "<u8", (7,))])


class BlobFile:
    """One weight file, memory-mapped once; :meth:`read` returns the blob at a metadata offset as a copy."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"cannot read the Core ML weight file {self.path}: {e}") from None
        header = np.frombuffer(self._map, _HEADER, count=1)[0] if len(self._map) >= 64 else None
        if header is None or int(header["version"]) != 2:
            raise ArtifactError(f"{self.path} is not a MIL blob storage file (version 2)")

    def read(self, offset: int) -> np.ndarray:
        """The values of the blob whose metadata starts at ``offset`` (1-D; sub-byte types unpacked)."""
        if offset < 64 or offset + 64 > len(self._map):
            raise ArtifactError(f"{self.path.name}: blob offset {offset} outside the file")
        meta = np.frombuffer(self._map, _METADATA, count=1, offset=offset)[0]
        if int(meta["sentinel"]) != SENTINEL:
            raise ArtifactError(f"{self.path.name}: invalid blob metadata at offset {offset}")
        code, start, size = int(meta["dtype"]), int(meta["offset"]), int(meta["size"])
        if code not in BLOB_DTYPES:
            raise ArtifactError(f"{self.path.name}: blob data type {code} at offset {offset} is not supported")
        if start + size > len(self._map):
            raise ArtifactError(f"{self.path.name}: blob at offset {offset} runs past the end of the file")
        dtype, bits = BLOB_DTYPES[code]
        raw = np.frombuffer(self._map, np.uint8, count=size, offset=start)
        if bits >= 8:
            return raw.view(np.dtype(dtype).newbyteorder("<")).astype(dtype)
        count = (size * 8 - int(meta["padding_bits"])) // bits
        values = unpack_lsb_first(raw, bits, count)
        if dtype is np.int8:  # int4: two's complement in 4 bits
            return np.where(values >= 8, values.astype(np.int16) - 16, values).astype(np.int8)
        return values.astype(dtype)


def unpack_lsb_first(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """``count`` unsigned ``nbits`` integers packed least-significant bit first (MILBlob's sub-byte layout).

    >>> unpack_lsb_first(np.array([0b00100001], np.uint8), 4, 2).tolist()   # low nibble first
    [1, 2]
    """
    bits = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")[: count * nbits]
    return (bits.reshape(count, nbits).astype(np.uint32) << np.arange(nbits, dtype=np.uint32)).sum(axis=1)
