"""The recorder's file layout, walked byte by byte for tests (independent of the reader)."""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from arb.replay.recorder import BLOCK_HEADER, END_MAGIC, FILE_HEADER

V1_BLOCK_HEADER = struct.Struct("<4sIIII")


class Block(NamedTuple):
    offset: int
    magic: bytes
    raw_len: int
    records: int
    summary: bytes
    stored: bytes
    end: int  # offset of the next block


def blocks(data: bytes) -> list[Block]:
    """The blocks of a whole file (any version), the end marker last."""
    found = []
    offset = FILE_HEADER.size
    version = struct.unpack_from("<H", data, 6)[0]
    while offset < len(data):
        if version == 1:
            magic, stored_len, raw_len, records, _ = V1_BLOCK_HEADER.unpack_from(data, offset)
            summary_len, summary_at = 0, offset + V1_BLOCK_HEADER.size
        else:
            magic, stored_len, raw_len, records, summary_len, _, _ = BLOCK_HEADER.unpack_from(data, offset)
            summary_at = offset + BLOCK_HEADER.size
        stored_at = summary_at + summary_len
        end = stored_at + stored_len
        found.append(Block(offset, magic, raw_len, records, data[summary_at:stored_at], data[stored_at:end], end))
        if magic == END_MAGIC:
            break
        offset = end
    return found


def with_version(data: bytes, version: int) -> bytes:
    """``data`` with its file header saying format ``version`` (and a CRC that matches)."""
    head = bytearray(data[: FILE_HEADER.size])
    head[6:8] = struct.pack("<H", version)
    head[-4:] = struct.pack("<I", zlib.crc32(bytes(head[:-4])))
    return bytes(head) + data[FILE_HEADER.size :]


def as_version_1(data: bytes) -> bytes:
    """A file of the current format rewritten as the version 1 format writes it (no summaries, one CRC per block)."""
    parts = [with_version(data[: FILE_HEADER.size], 1)]
    for block in blocks(data):
        fields = struct.pack("<III", len(block.stored), block.raw_len, block.records)
        parts.append(block.magic + fields + struct.pack("<I", zlib.crc32(block.stored, zlib.crc32(fields))))
        parts.append(block.stored)
    return b"".join(parts)
