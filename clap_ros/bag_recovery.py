"""MCAP chunks for a recorder that may be killed: close them often, and read them back when the file was never closed.

rosbags writes `metadata.yaml` and the MCAP summary and footer only on a clean close, and keeps
up to 1 MiB of messages in memory before it writes a chunk. A recorder killed with SIGKILL (or the
OOM killer, or a power-cut process) would leave a file rosbags refuses, holding at best what
happened to be written. So the recorder calls `flush_chunk` every second: the pending chunk
becomes a complete record in the file and the file's buffer goes to the OS, where it outlives
the process. `UnterminatedReader` reads such a file without its summary: it walks the records
(MCAP: opcode u8, length u64, body) and yields the messages of every complete chunk, stopping at
the first record cut short. It offers what `bag_io` uses of rosbags' AnyReader and writes
nothing, so a full or read-only disk is read where it is.
"""
from __future__ import annotations

import mmap
import struct
from binascii import crc32
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

MAGIC = b"\x89MCAP0\r\n"
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x03, 0x04, 0x05, 0x06, 0x0F
KNOWN_OPS = set(range(0x01, 0x11))  # MCAP's record opcodes; anything else is garbage after a cut


def flush_chunk(writer: Any) -> bool:
    """Close the pending MCAP chunk of an open rosbags `Writer` and hand it to the OS; False for
    storages without chunks (sqlite3). rosbags has no public call for this: it uses its
    `McapWriter`'s `close_chunk` and file (rosbags 0.10–0.11)."""
    from rosbags.rosbag2.storage_mcap import McapWriter

    storage = writer.storage
    if not isinstance(storage, McapWriter):
        return False
    if storage.chunk.bio.tell():
        storage.close_chunk()
    storage.bio.flush()
    return True


@dataclass(frozen=True)
class RecoveredConnection:
    """One channel of the file, as far as `bag_io` needs a connection."""

    id: int
    topic: str
    msgtype: str
    msgcount: int


class UnterminatedReader:
    """The complete chunks of an MCAP file that was never closed (no summary, no footer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb")
        try:
            self._buf: Any = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            self._buf = b""
        if bytes(self._buf[:8]) != MAGIC:
            self.close()
            raise ValueError(f"{path.name} is not an MCAP file (no MCAP magic at its start)")
        self._schemas: dict[int, tuple[str, str]] = {}
        self._channels: dict[int, tuple[str, int]] = {}
        counts: dict[int, int] = {}
        self.chunks = 0
        for channel, _, _ in self._scan():
            counts[channel] = counts.get(channel, 0) + 1
        self.connections = [RecoveredConnection(cid, topic, self._schemas[sid][0], counts.get(cid, 0))
                            for cid, (topic, sid) in sorted(self._channels.items()) if sid in self._schemas]
        self._store = self._typestore()

    def _scan(self) -> Iterator[tuple[int, int, memoryview]]:
        """(channel id, log time ns, data) of every message in a complete record, in file order;
        schemas and channels are collected on the way (rosbags writes them inside chunks)."""
        self.chunks = 0
        view = memoryview(self._buf)
        start = len(MAGIC)
        for op, body in _records(view, start):
            if op == OP_DATA_END:  # a file that was closed after all: the summary follows
                return
            if op == OP_CHUNK:
                records = _chunk_records(body)
                if records is None:
                    return
                self.chunks += 1
                yield from self._inner(records)
            else:
                yield from self._inner_one(op, body)

    def _inner(self, records: memoryview) -> Iterator[tuple[int, int, memoryview]]:
        for op, body in _records(records, 0):
            yield from self._inner_one(op, body)

    def _inner_one(self, op: int, body: memoryview) -> Iterator[tuple[int, int, memoryview]]:
        if op == OP_SCHEMA:
            (sid,) = struct.unpack_from("<H", body, 0)
            name, pos = _string(body, 2)
            encoding, pos = _string(body, pos)
            (size,) = struct.unpack_from("<I", body, pos)
            if encoding == "ros2msg":
                self._schemas[sid] = (name, bytes(body[pos + 4:pos + 4 + size]).decode())
        elif op == OP_CHANNEL:
            cid, sid = struct.unpack_from("<HH", body, 0)
            topic, _ = _string(body, 4)
            self._channels[cid] = (topic, sid)
        elif op == OP_MESSAGE:
            cid, _, log_ns = struct.unpack_from("<HIQ", body, 0)
            yield cid, log_ns, body[22:]

    def _typestore(self) -> Any:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        store = get_typestore(Stores.ROS2_KILTED)
        for name, text in self._schemas.values():
            store.register(get_types_from_msg(text, name))
        return store

    def messages(self, connections: list[RecoveredConnection]) -> Iterator[tuple[RecoveredConnection, int, bytes]]:
        """(connection, log time ns, raw CDR) of the given connections' messages, in file order."""
        wanted = {c.id: c for c in connections}
        for cid, log_ns, data in self._scan():
            if cid in wanted:
                yield wanted[cid], log_ns, bytes(data)

    @property
    def note(self) -> str:
        """What replay says about the bag it reads."""
        return (f"never closed (no metadata.yaml: recorder killed or disk full); reading its {self.chunks} "
                "complete chunks, what came after the last one is lost")

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self._store.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            try:
                self._buf.close()
            except BufferError:  # a message generator left suspended still holds a view: freed with it
                pass
        self._file.close()


def open_unterminated(file: Path) -> UnterminatedReader:
    """The reader of a bag folder without metadata.yaml, or a one-line `BagError`."""
    from .bag_formats import BagError

    try:
        reader = UnterminatedReader(file)
    except (OSError, ValueError) as exc:
        raise BagError(f"{file.parent}: not a rosbag2 bag (metadata.yaml is missing) and {file.name} cannot be "
                       f"recovered ({' '.join(str(exc).split())})") from None
    if reader.chunks == 0:
        reader.close()
        raise BagError(f"{file.parent}: never closed (no metadata.yaml) and {file.name} holds no complete chunk: "
                       "nothing was recorded before the recorder stopped")
    return reader


def _records(buf: memoryview, pos: int) -> Iterator[tuple[int, memoryview]]:
    """(opcode, body) of each complete record from `pos`; stops at a cut or garbage."""
    while pos + 9 <= len(buf):
        op = buf[pos]
        (size,) = struct.unpack_from("<Q", buf, pos + 1)
        end = pos + 9 + size
        if op not in KNOWN_OPS or end > len(buf):
            return
        yield op, buf[pos + 9:end]
        pos = end


def _chunk_records(body: memoryview) -> memoryview | None:
    """A chunk's records, decompressed and checked; None if the chunk is damaged."""
    try:
        _, _, size, crc = struct.unpack_from("<QQQI", body, 0)
        compression, pos = _string(body, 28)
        (length,) = struct.unpack_from("<Q", body, pos)
        data = body[pos + 8:pos + 8 + length]
        if len(data) != length:
            return None
        if compression:
            from rosbags.rosbag2.storage_mcap import decompress

            return memoryview(decompress(bytes(data), compression, size, crc))
    except Exception:  # noqa: BLE001 - bad lengths, unknown compression, bad checksum: the readable part ends
        return None
    if len(data) != size or (crc and crc32(data) != crc):
        return None
    return data


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("<I", buf, pos)
    return bytes(buf[pos + 4:pos + 4 + size]).decode(), pos + 4 + size
