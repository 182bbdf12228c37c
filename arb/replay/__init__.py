"""Recording of raw market data and reading it back (``recorder``, ``reader``)."""

from .reader import Record, RecordingDamaged, RecordingReader, read_records, recording_files
from .recorder import MARKET_CODES, Recorder, RecorderStats, RecordKind

__all__ = [
    "MARKET_CODES",
    "Record",
    "RecordKind",
    "Recorder",
    "RecorderStats",
    "RecordingDamaged",
    "RecordingReader",
    "read_records",
    "recording_files",
]
