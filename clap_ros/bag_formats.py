"""The two `audio_common_msgs` layouts as rosbag2 sees them: type names, .msg definitions, storages.

Shared by the bag reader (bag_io.py) and writer (bag_writer.py); no ROS message packages needed.
"""
from __future__ import annotations

from typing import Any

from clap_core.errors import ClapError

LAYOUT_STAMPED, LAYOUT_RAW = "stamped", "raw"
LAYOUTS = (LAYOUT_STAMPED, LAYOUT_RAW)
STORAGES = ("mcap", "sqlite3")
STAMPED = "audio_common_msgs/msg/AudioStamped"
RAW_DATA = "audio_common_msgs/msg/AudioData"
RAW_STAMPED = "audio_common_msgs/msg/AudioDataStamped"
RAW_INFO = "audio_common_msgs/msg/AudioInfo"

# Message definitions (.msg text) of the two layouts, for writing bags and for reading old bags
# that carry no definitions. The stamped layout is the one built in interfaces/audio_common_msgs.
MSGDEFS: dict[str, dict[str, str]] = {
    LAYOUT_STAMPED: {
        "audio_common_msgs/msg/AudioData": "float32[] float32_data\nint32[] int32_data\nint16[] int16_data\n"
                                           "int8[] int8_data\nuint8[] uint8_data\n",
        "audio_common_msgs/msg/AudioInfo": "int32 format\nint32 channels\nint32 rate\nint32 chunk\n",
        "audio_common_msgs/msg/Audio": "AudioData audio_data\nAudioInfo info\n",
        STAMPED: "std_msgs/Header header\nAudio audio\n",
    },
    LAYOUT_RAW: {
        RAW_DATA: "uint8[] data\n",
        RAW_INFO: "uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\n"
                  "string coding_format\n",
        RAW_STAMPED: "std_msgs/Header header\nAudioData audio\n",
    },
}


class BagError(ClapError):
    """A bag cannot be used: not a bag, damaged, no audio, mixed rates. Names the bag and the fix."""


def typestore_for(layout: str) -> Any:
    """A rosbags typestore holding the standard types and one audio layout."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for name, text in MSGDEFS[layout].items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
