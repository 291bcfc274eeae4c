"""The black-box recorder writes a bag that replay reads and that holds typed predicate messages."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
clap_msgs = pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")

from clap_ros.bag_io import read_bag_audio  # noqa: E402
from clap_ros.bag_recorder import BagRecorder, RecorderError, open_recorder  # noqa: E402


def test_recorder_round_trip(tmp_path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rosbags.highlevel import AnyReader

    rec = BagRecorder(tmp_path / "rec")
    x = (np.sin(np.arange(48000) * 0.02) * 0.4).astype(np.float32)
    for i in range(0, len(x), 4800):
        rec.audio(x[i:i + 4800], 48000, 50.0 + i / 48000)
    msg = clap_msgs.AudioPredicates(names=["a", "b"], values=[True, False], scores=[0.75, 0.25],
                                    thresholds=[0.5, 0.5], fired=[True, False], flags=["gap"])
    msg.header.stamp.sec = 55
    rec.message("/audio_predicates", msg)
    rec.message("/diagnostics", DiagnosticArray(status=[DiagnosticStatus(name="clap", message="ok")]))
    rec.close()
    rec.close()  # idempotent
    assert rec.messages == 12

    stream, chunks = read_bag_audio(rec.path)
    chunks = list(chunks)
    assert stream.storage == "mcap" and stream.layout == "stamped" and stream.topic == "/audio"
    y = np.concatenate([c.samples for c in chunks])
    assert np.max(np.abs(y - x)) < 1e-4 and chunks[0].t_first == pytest.approx(50.0)

    with AnyReader([rec.path]) as reader:  # decoded from the definitions stored in the bag
        conns = {c.topic: c for c in reader.connections}
        assert conns["/audio_predicates"].msgtype == "clap_ros_interfaces/msg/AudioPredicates"
        (_, _, raw), = reader.messages(connections=[conns["/audio_predicates"]])
        back = reader.deserialize(raw, "clap_ros_interfaces/msg/AudioPredicates")
        assert list(back.names) == ["a", "b"] and list(back.values) == [True, False]
        assert back.scores.tolist() == [0.75, 0.25] and back.header.stamp.sec == 55
        (_, _, raw), = reader.messages(connections=[conns["/diagnostics"]])
        assert reader.deserialize(raw, "diagnostic_msgs/msg/DiagnosticArray").status[0].message == "ok"


def test_recorder_off_and_bad_dir(tmp_path) -> None:
    assert open_recorder("") is None
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecorderError, match="cannot create it"):
        BagRecorder(tmp_path / "file" / "sub")


# -- faults: a full disk, a disk that turns read-only, a recorder that never closes -------------
CHUNK = 4800  # 0.1 s at 48 kHz: 9.6 kB per message


def _tone(seconds: float, rate: int = 48000) -> np.ndarray:
    t = np.arange(int(seconds * rate))
    return (np.sin(t * 0.013) * 0.3 + np.sin(t * 0.0021) * 0.2).astype(np.float32)


def _record_until_stopped(rec: BagRecorder, x: np.ndarray, rate: int = 48000) -> int:
    """Write `x` chunk by chunk; the number of chunks accepted before the recorder stopped."""
    for n, i in enumerate(range(0, len(x), CHUNK)):
        if not rec.health().recording:
            return n
        rec.audio(x[i:i + CHUNK], rate, 100.0 + i / rate)
    return len(range(0, len(x), CHUNK))


def _assert_exact_prefix(path, x: np.ndarray, at_least: int) -> int:
    """The bag's audio is the first chunks of `x`, exactly (int16), at least `at_least` of them."""
    stream, chunks = read_bag_audio(path)
    chunks = list(chunks)
    y = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
    assert len(chunks) >= at_least and len(y) == len(chunks) * CHUNK, (len(chunks), at_least)
    expected = np.clip(np.round(x[:len(y)] * 32768.0), -32768, 32767) / 32768.0
    assert np.array_equal(y, expected.astype(np.float32))
    assert chunks[0].t_first == pytest.approx(100.0) and stream.messages == len(chunks)
    return len(chunks)


def test_disk_full_stops_the_recorder_with_the_reason_and_keeps_every_flushed_chunk(tmp_path) -> None:
    from fs_faults import small_tmpfs

    errors: list[str] = []
    with small_tmpfs(tmp_path / "small", size_kb=256) as disk:
        rec = BagRecorder(disk, flush_s=0.0, on_error=errors.append)  # every write is flushed
        x = _tone(10.0)  # 960 kB: four times the disk
        accepted = _record_until_stopped(rec, x)
        health = rec.health()
        assert not health.recording and "No space left on device (ENOSPC)" in health.error
        assert len(errors) == 1 and "the node goes on without recording" in errors[0]
        assert 10 < accepted < 100
        rec.audio(x[:CHUNK], 48000, 0.0)  # writes after the stop are dropped, not raised
        rec.close()
        assert rec.health().messages == accepted and len(errors) == 1
        # Never closed (no metadata.yaml): read up to the last complete chunk, the failed write at most lost.
        assert not (rec.path / "metadata.yaml").exists()
        _assert_exact_prefix(rec.path, x, at_least=accepted - 1)


def test_read_only_file_system_stops_the_recorder_with_the_reason(tmp_path) -> None:
    from fs_faults import failing_ext4

    errors: list[str] = []
    x = _tone(4.0)
    with failing_ext4(tmp_path / "ext4", tmp_path / "ext4.img") as fs:
        rec = BagRecorder(fs.point, flush_s=0.0, on_error=errors.append)
        assert _record_until_stopped(rec, x[:len(x) // 2]) == 20 and rec.health().recording
        fs.fail()
        _record_until_stopped(rec, x[len(x) // 2:])
        health = rec.health()
        assert not health.recording and "Read-only file system (EROFS)" in health.error and len(errors) == 1
        rec.close()
        _assert_exact_prefix(rec.path, x, at_least=20)


def test_unflushed_tail_is_lost_and_the_rest_replays(tmp_path) -> None:
    """A recorder that is never closed (as after SIGKILL): the file holds what was flushed, no more."""
    rec = BagRecorder(tmp_path / "rec", flush_s=3600.0)
    x = _tone(3.0)
    for i in range(0, len(x), CHUNK):
        rec.audio(x[i:i + CHUNK], 48000, 100.0 + i / 48000)
        if i == 9 * CHUNK:
            from clap_ros.bag_recovery import flush_chunk

            flush_chunk(rec._audio.writer)  # as the recorder's 1-s timer does
    # not closed: the last 20 chunks are still in memory, as in a killed process
    assert _assert_exact_prefix(rec.path, x, at_least=10) == 10


def test_a_bag_that_holds_no_complete_chunk_is_one_clear_error(tmp_path) -> None:
    from clap_ros.bag_io import BagError

    rec = BagRecorder(tmp_path / "rec", flush_s=3600.0)
    rec.audio(_tone(0.1), 48000, 1.0)
    rec._audio.writer.storage.bio.flush()  # the header only
    with pytest.raises(BagError, match="holds no complete chunk"):
        read_bag_audio(rec.path)
    (next(rec.path.glob("*.mcap"))).write_bytes(b"not mcap at all")
    with pytest.raises(BagError, match="cannot be recovered"):
        read_bag_audio(rec.path)
