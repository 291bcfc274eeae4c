"""A child process (`run_child`) dies with its parent: a killed node leaves no export or embedding running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLOW_CHILD = '''
import time
from clap_core.child_process import serve
serve(lambda request: time.sleep(120) or b"")
'''
PARENT = "from clap_core.child_process import run_child; run_child('slow_child', {}, 'slow job')"


def _tagged(tag: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"CLAP_TEST_TAG={tag}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_child_is_killed_when_its_parent_is_killed(tmp_path) -> None:
    (tmp_path / "slow_child.py").write_text(SLOW_CHILD)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "CLAP_TEST_TAG": tag}
    parent = subprocess.Popen([sys.executable, "-c", PARENT], env=env, cwd=tmp_path)
    try:
        end = time.monotonic() + 60
        while len(_tagged(tag)) < 2:  # the parent and its child
            assert parent.poll() is None and time.monotonic() < end, "the child did not start"
            time.sleep(0.05)
        time.sleep(1.0)  # the child is past its start, waiting in its job
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        end = time.monotonic() + 10
        while _tagged(tag) and time.monotonic() < end:
            time.sleep(0.1)
        assert _tagged(tag) == [], "the child outlived its killed parent"
    finally:
        for pid in _tagged(tag):
            os.kill(pid, signal.SIGKILL)


def test_stop_children_ends_a_job_under_way_with_a_clear_error(tmp_path, monkeypatch) -> None:
    """A stopping node kills its reload's child instead of waiting for it (up to the timeout if it
    hangs): the job ends at once, the child is gone, and the error says why."""
    import threading

    import pytest

    from clap_core import child_process
    from clap_core.errors import ClapError

    (tmp_path / "slow_child.py").write_text(SLOW_CHILD)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{ROOT}")
    outcome: list[BaseException] = []

    def job() -> None:
        try:
            child_process.run_child("slow_child", {}, "slow job", timeout_s=300)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=job)
    worker.start()
    end = time.monotonic() + 60
    while not child_process._running:
        assert time.monotonic() < end, "the child did not start"
        time.sleep(0.02)
    (proc,) = child_process._running
    child_process.stop_children()
    worker.join(timeout=30)
    assert not worker.is_alive(), "run_child still waits for the stopped child"
    assert proc.poll() is not None and not child_process._running
    with pytest.raises(ClapError, match="the slow job child process was stopped: this process is shutting down"):
        raise outcome[0]
