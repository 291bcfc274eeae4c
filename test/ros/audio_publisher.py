"""An audio publisher in its own process, to be killed and restarted like a real driver.

    python test/ros/audio_publisher.py TOPIC --t0 1000 --seconds 3 --speed 2

publishes seeded noise as mgonzs13 AudioStamped chunks stamped from `t0` (audio time), `speed` times
faster than real time, and prints `sent <audio time of the chunk's end>` after each one, so a test
knows exactly which audio left the process before it was killed. `--seconds 0` publishes until
killed; otherwise it stays up `--linger` seconds after the last chunk (best-effort samples still in
flight are not cut off by the exit).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


class PublisherProcess:
    """`audio_publisher.py` as a child process (run like the node, by `NodeProcess`); `sent` is the
    end of the last chunk it published."""

    def __init__(self, topic: str, t0: float, seconds: float = 0.0, speed: float = 1.0, chunk_s: float = 0.1,
                 seed: int = 0) -> None:
        from node_harness import NodeProcess

        self.process = NodeProcess({}, command=[
            sys.executable, str(HERE / "audio_publisher.py"), topic, "--t0", repr(t0), "--seconds", repr(seconds),
            "--speed", repr(speed), "--chunk", repr(chunk_s), "--seed", str(seed)])
        self.proc = self.process.proc

    @property
    def sent(self) -> float | None:
        done = [line for line in self.process.lines if line.startswith("sent ")]
        return float(done[-1].split()[1]) if done else None

    def kill(self) -> float:
        """SIGKILL (no goodbye); returns the audio time up to which it had published."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.process.wait_exit(timeout=10)
        sent = self.sent
        assert sent is not None, "the publisher sent nothing:\n" + self.process.output
        return sent


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from audio_common_msgs.msg import AudioStamped
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.utilities import remove_ros_args

    from node_harness import audio_stamped

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("topic")
    ap.add_argument("--t0", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=0.0)
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--chunk", type=float, default=0.1)
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--linger", type=float, default=2.0)
    args = ap.parse_args(remove_ros_args(argv if argv is not None else sys.argv)[1:])
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = rclpy.create_node(f"audio_publisher_{os.getpid()}")
    pub = node.create_publisher(AudioStamped, args.topic, qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the subscriber has to match us too before best-effort samples reach it
    rng = np.random.default_rng(args.seed)
    n = int(round(args.chunk * args.rate))
    total = int(round(args.seconds * args.rate)) if args.seconds > 0 else None
    start, i = time.monotonic(), 0
    while total is None or i < total:
        samples = (rng.standard_normal(n) * 0.05).astype(np.float32)
        pub.publish(audio_stamped(samples, args.rate, args.t0 + i / args.rate))
        i += n
        print(f"sent {args.t0 + i / args.rate!r}", flush=True)
        time.sleep(max(0.0, start + i / args.rate / args.speed - time.monotonic()))
    time.sleep(args.linger)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
