"""Reading and writing audio bags: both layouts, both storages, and clear errors for bad bags."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from clap_ros.bag_formats import BagError, typestore_for
from clap_ros.bag_io import read_bag_audio
from clap_ros.bag_writer import AudioBagWriter, write_audio_bag

DATA = Path(__file__).resolve().parent / "data"
SCENES = {"scene1": ["scene1_stamped_mcap", "scene1_raw_sqlite3"], "scene2": ["scene2_raw_mcap", "scene2_stamped_sqlite3"]}
ROOT = Path(__file__).resolve().parents[2]


def _one_message_bag(path: Path, layout: str, topic: str, msgtype: str, make) -> Path:
    """A bag holding one message, `make(types)`, written with rosbags' own Writer (not the project's)."""
    from rosbags.rosbag2 import Writer

    store = typestore_for(layout)
    with Writer(path, version=9) as w:
        conn = w.add_connection(topic, msgtype, typestore=store)
        w.write(conn, 1, store.serialize_cdr(make(store.types), msgtype))
    return path


def _decode(path: Path, topic: str | None = None):
    stream, chunks = read_bag_audio(path, topic)
    chunks = list(chunks)
    return stream, np.concatenate([c.samples for c in chunks]), [c.t_first for c in chunks], chunks


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_committed_bags_decode_identically_in_both_layouts(scene: str) -> None:
    decoded = [_decode(DATA / name) for name in SCENES[scene]]
    layouts = {s.layout for s, *_ in decoded}
    storages = {s.storage for s, *_ in decoded}
    assert layouts == {"stamped", "raw"} and storages == {"mcap", "sqlite3"}
    (s1, x1, t1, c1), (s2, x2, t2, c2) = decoded
    assert np.array_equal(x1, x2)
    assert np.allclose(np.array(t1) - t1[0], np.array(t2) - t2[0], atol=1e-6)
    assert {c.sample_rate for c in c1 + c2} == {16000}
    assert 20 < len(x1) / 16000 < 40  # the scenes are ~30 s


def test_writer_round_trip_is_exact_to_int16(tmp_path: Path) -> None:
    x = (np.sin(np.arange(8000) * 0.01) * 0.5).astype(np.float32)
    for layout in ("stamped", "raw"):
        for storage in ("mcap", "sqlite3"):
            bag = write_audio_bag(tmp_path / f"{layout}_{storage}", x, 8000, layout, storage, t0=100.0, chunk=700)
            stream, y, times, _ = _decode(bag)
            assert stream.layout == layout and stream.storage == storage
            assert np.max(np.abs(y - x)) <= 0.5 / 32768 + 1e-7
            assert times[0] == pytest.approx(100.0, abs=1e-6)
            assert times[1] - times[0] == pytest.approx(700 / 8000, abs=1e-6)


def test_dropped_messages_show_in_chunk_times(tmp_path: Path) -> None:
    x = np.zeros(16000, np.float32)
    for layout in ("stamped", "raw"):
        _, _, times, _ = _decode(write_audio_bag(tmp_path / layout, x, 16000, layout, chunk=1000, drop={5}))
        steps = np.diff(times)
        assert steps.max() == pytest.approx(2 * 1000 / 16000, abs=1e-4)  # the jump over the lost message
        assert np.sum(steps > 0.09) == 1


def test_bag_without_metadata(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    shutil.copytree(DATA / "scene1_raw_sqlite3", bag)
    (bag / "metadata.yaml").unlink()
    with pytest.raises(BagError, match="metadata.yaml is missing"):
        read_bag_audio(bag)


def test_mcap_without_metadata_is_read_from_its_chunks(tmp_path: Path) -> None:
    """An mcap file holds its own schemas and channels: it replays without metadata.yaml, all of it."""
    bag = tmp_path / "bag"
    shutil.copytree(DATA / "scene1_stamped_mcap", bag)
    (bag / "metadata.yaml").unlink()
    stream, chunks = read_bag_audio(bag)
    ref_stream, ref_chunks = read_bag_audio(DATA / "scene1_stamped_mcap")
    got, ref = list(chunks), list(ref_chunks)
    assert "never closed" in stream.note and ref_stream.note == ""
    assert stream.messages == ref_stream.messages == len(got) == len(ref)
    assert all(a.t_first == b.t_first and np.array_equal(a.samples, b.samples) for a, b in zip(got, ref))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="no such bag"):
        read_bag_audio(tmp_path / "nope")


def test_bag_without_audio_names_its_topics(tmp_path: Path) -> None:
    _one_message_bag(tmp_path / "text", "stamped", "/chatter", "std_msgs/msg/String",
                     lambda T: T["std_msgs/msg/String"](data="hi"))
    with pytest.raises(BagError, match=r"no audio topic .* topics: /chatter \(std_msgs/msg/String\)"):
        read_bag_audio(tmp_path / "text")
    with pytest.raises(BagError, match="topic /chatter has type std_msgs/msg/String, not an audio type"):
        read_bag_audio(tmp_path / "text", topic="/chatter")


@pytest.mark.parametrize("name", ["scene1_stamped_mcap", "scene1_raw_sqlite3"])
def test_truncated_bag(tmp_path: Path, name: str) -> None:
    bag = tmp_path / "bag"
    shutil.copytree(DATA / name, bag)
    (data,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(BagError, match="truncated|damaged"):
        _decode(bag)


def test_mixed_sample_rates(tmp_path: Path) -> None:
    with AudioBagWriter(tmp_path / "mixed", "stamped", "mcap") as w:
        w.write(np.zeros(1600, np.float32), 16000, 10.0)
        w.write(np.zeros(4410, np.float32), 44100, 10.1)
    with pytest.raises(BagError, match="mixed sample rates on /audio: 16000 Hz, then 44100 Hz"):
        _decode(tmp_path / "mixed")


def test_raw_audio_before_info_is_an_error(tmp_path: Path) -> None:
    _one_message_bag(tmp_path / "noinfo", "raw", "/audio/audio", "audio_common_msgs/msg/AudioData",
                     lambda T: T["audio_common_msgs/msg/AudioData"](data=np.zeros(64, np.uint8)))
    with pytest.raises(BagError, match="comes before any AudioInfo .* or give the format"):
        _decode(tmp_path / "noinfo")
    stream, chunks = read_bag_audio(tmp_path / "noinfo", raw_rate=8000, raw_channels=2)  # as the node's fallback
    (chunk,) = list(chunks)
    assert chunk.sample_rate == 8000 and len(chunk.samples) == 16  # 64 bytes = 16 stereo S16LE frames


def test_layout_definitions_match_the_interfaces_package() -> None:
    """bag_formats' stamped-layout .msg text says the same fields as interfaces/audio_common_msgs."""
    from clap_ros.bag_formats import MSGDEFS

    for name, text in MSGDEFS["stamped"].items():
        msg = ROOT / "interfaces" / "audio_common_msgs" / "msg" / f"{name.rsplit('/', 1)[1]}.msg"
        fields = [ln.split("#")[0].split() for ln in msg.read_text().splitlines()]
        assert [f for f in fields if f] == [ln.split() for ln in text.splitlines() if ln.strip()]


def test_unknown_sample_format_is_an_error(tmp_path: Path) -> None:
    def format_4(T):
        return T["audio_common_msgs/msg/AudioStamped"](
            header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id=""),
            audio=T["audio_common_msgs/msg/Audio"](
                audio_data=T["audio_common_msgs/msg/AudioData"](
                    float32_data=np.zeros(0, np.float32), int32_data=np.zeros(0, np.int32),
                    int16_data=np.zeros(0, np.int16), int8_data=np.zeros(0, np.int8),
                    uint8_data=np.zeros(8, np.uint8)),
                info=T["audio_common_msgs/msg/AudioInfo"](format=4, channels=1, rate=16000, chunk=8)))

    _one_message_bag(tmp_path / "fmt", "stamped", "/audio", "audio_common_msgs/msg/AudioStamped", format_4)
    with pytest.raises(BagError, match="/audio: AudioInfo.format 4 is not supported"):
        _decode(tmp_path / "fmt")


@pytest.mark.parametrize("scene", ["scene1", "gen1"])
def test_committed_bags_are_what_make_bags_builds(sounds45, scene) -> None:
    """The committed scenes are reproducible from ../shared/data by test/bags/make_bags.py."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("make_bags", Path(__file__).resolve().parent / "make_bags.py")
    make_bags = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_bags)
    if scene == "scene1":
        clips = make_bags.sounds45_clips(make_bags.TEST_SCENES["scene1"], sounds45)
        audio, labels = make_bags.scene_audio(clips, make_bags.TARGETS, seed=0)
    else:
        clips, _ = make_bags.gen_clips(sounds45.parent / "sfx_pool")
        audio, labels = make_bags.scene_audio(clips, make_bags.GEN_TARGETS, seed=7, level_dbfs=make_bags.GEN_LEVEL_DBFS)
    _, decoded, _, _ = _decode(DATA / f"{scene}_stamped_mcap")
    assert len(decoded) == len(audio)
    assert np.max(np.abs(decoded - np.clip(audio, -1, 32767 / 32768))) <= 0.5 / 32768 + 1e-7
    assert json.loads((DATA / f"{scene}.labels.json").read_text())["events"] == labels["events"]
