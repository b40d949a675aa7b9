"""TensorBoard event files written by hand, so every run has them without the `tensorboard` package.

An event file is a sequence of TFRecords: an 8-byte little-endian length, the masked CRC-32C of
those 8 bytes, the payload, the masked CRC-32C of the payload. Each payload is an `Event`
protocol-buffer message; the first carries `file_version` ("brain.Event:2"), the others a step,
a wall time and a `Summary` of scalar `Value`s (tag + simple_value). Those few fields are
encoded here directly (varints, fixed64 doubles, fixed32 floats, length-delimited strings and
messages), which is all a scalar log needs. The key choice: no protobuf, grpcio or tensorboard
in the core dependencies; the cost is that only scalars can be written. CRC-32C (Castagnoli) is
a small table-driven function: no installed core dependency provides it, and Python's zlib has
only the other CRC-32. A test reads our files back with tensorboard's own EventAccumulator.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import BinaryIO

from plmkit.runtime.files import atomic_write_bytes

FILE_NAME = "events.out.tfevents.plmkit"  # TensorBoard reads any file whose name holds "tfevents"
_POLY = 0x82F63B78  # Castagnoli's polynomial, bit-reversed


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """The CRC-32C (Castagnoli) of `data`."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """CRC-32C rotated right by 15 bits plus a constant, as TFRecord framing stores it."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(payload: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the payload, the payload's masked CRC."""
    length = struct.pack("<Q", len(payload))
    return (length + struct.pack("<I", masked_crc(length)) + payload
            + struct.pack("<I", masked_crc(payload)))


# ----------------------------------------------------------------------------- protobuf fields


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64s are ten-byte two's complement varints
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _delimited(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _value(tag: str, number: float) -> bytes:
    """A Summary.Value: tag (1, string), simple_value (2, float)."""
    return _delimited(1, tag.encode("utf-8")) + _key(2, 5) + struct.pack("<f", number)


def _event(wall_time: float, step: int | None = None, summary: bytes | None = None,
           file_version: str | None = None) -> bytes:
    """An Event: wall_time (1, double), step (2, int64), file_version (3), summary (5)."""
    out = _key(1, 1) + struct.pack("<d", wall_time)
    if step is not None:
        out += _key(2, 0) + _varint(step)
    if file_version is not None:
        out += _delimited(3, file_version.encode("utf-8"))
    if summary is not None:
        out += _delimited(5, summary)
    return out


def scalars_event(step: int, scalars: dict[str, float], wall_time: float) -> bytes:
    """The Event payload holding `scalars` (tag → value) at `step`."""
    summary = b"".join(_delimited(1, _value(tag, value)) for tag, value in scalars.items())
    return _event(wall_time, step, summary)


class EventFile:
    """run_dir/tb/FILE_NAME: rewritten whole at open (from what the run has logged), then appended.

    Rewriting at open is how a resumed run drops the events logged after its checkpoint, and a
    half-written last record of a killed run; replayed events get wall times spaced as their
    training times were, ending now (their real wall times are not kept anywhere).
    """

    def __init__(self, directory: Path, replay: list[tuple[int, dict[str, float], float]]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE_NAME
        now = time.time()
        last = max((train_s for _, _, train_s in replay), default=0.0)
        chunks = [record(_event(now - last, file_version="brain.Event:2"))]
        chunks += [record(scalars_event(step, values, now - (last - train_s)))
                   for step, values, train_s in replay]
        atomic_write_bytes(self.path, b"".join(chunks))
        self.file: BinaryIO = open(self.path, "ab")  # noqa: SIM115 (closed by close())

    def write(self, step: int, scalars: dict[str, float]) -> None:
        """Append one event with `scalars` at `step`, stamped now."""
        self.file.write(record(scalars_event(step, scalars, time.time())))
        self.file.flush()

    def close(self) -> None:
        """Close the file."""
        self.file.close()
