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
