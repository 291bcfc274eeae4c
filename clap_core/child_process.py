"""Run one job in a short-lived child Python (`python -m <module>`): JSON request in, bytes out.

Long-running processes (the ROS node) hand heavy one-off work to a child — embedding prompts with a
text encoder, exporting a model with torch — so that the code and memory it needs never stay
resident. A plain subprocess rather than `multiprocessing`: spawning through multiprocessing
re-imports the caller's main script, which breaks scripts without an `if __name__ == "__main__"`
guard. This module imports nothing heavy, so both sides can use it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any, Callable

from . import errors
from .errors import ClapError

ERROR_PREFIX = "clap-child error: "
# Runs `python -m <module>` after asking Linux to kill the child when its parent dies
# (prctl PR_SET_PDEATHSIG = 1, SIGKILL), before anything heavy is imported: a parent killed, or
# interrupted while it was still starting the child (subprocess kills only a child it has fully
# started), leaves no orphan exporting or embedding on. A parent gone before the prctl: exit at once.
_BOOT = ("import ctypes, os, runpy, sys\n"
         "try:\n    ctypes.CDLL(None).prctl(1, 9)\nexcept (OSError, AttributeError):\n    pass\n"
         "if os.getppid() != int(sys.argv[1]):\n    sys.exit(1)\n"
         "sys.argv = sys.argv[2:]\n"
         "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")
# The error kinds that cross back with their own class (a bad setting stays a ConfigError).
_KINDS = {kind.__name__: kind for kind in (errors.ConfigError, errors.CheckpointError, errors.AudioFileError,
                                             errors.ManifestError)}


_running: dict[subprocess.Popen, bool] = {}  # children whose job is under way (any thread): stopped?
_lock = threading.Lock()


def run_child(module: str, request: dict[str, Any], what: str, timeout_s: float = 600.0) -> bytes:
    """The child's stdout. A `ClapError` raised in the child comes back with its own message;
    anything else as the last line of its stderr. `what` names the job in errors."""
    with subprocess.Popen([sys.executable, "-c", _BOOT, str(os.getpid()), module], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        with _lock:
            _running[proc] = False
        try:
            out, err = proc.communicate(json.dumps(request).encode(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise ClapError(f"the {what} child process gave no answer in {timeout_s:.0f} s") from None
        except BaseException:  # KeyboardInterrupt included: never leave it running (Popen waits on exit)
            proc.kill()
            raise
        finally:
            with _lock:
                stopped = _running.pop(proc)
    if stopped:
        raise ClapError(f"the {what} child process was stopped: this process is shutting down")
    if proc.returncode != 0:
        raise _child_error(err.decode(errors="replace"), proc.returncode, what)
    return out


def stop_children() -> None:
    """Kill every child whose job is under way, so a process that is stopping does not wait for it
    (a node's reload embedding its prompts: seconds, or the whole timeout if the child hangs). Each
    interrupted `run_child` raises a ClapError that says so."""
    with _lock:
        for proc in _running:
            _running[proc] = True
            proc.kill()


def _child_error(stderr: str, code: int, what: str) -> ClapError:
    for line in reversed(stderr.strip().splitlines()):
        if line.startswith(ERROR_PREFIX):
            kind, _, message = line[len(ERROR_PREFIX):].partition(" ")
            return _KINDS.get(kind, ClapError)(message)
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {code}"
    return ClapError(f"the {what} child process failed ({tail[:300]})")


def serve(handler: Callable[[dict[str, Any]], bytes]) -> int:
    """The child's side: read the request from stdin, write `handler`'s bytes to stdout. A
    `ClapError` becomes one `ERROR_PREFIX` line on stderr and exit code 1."""
    request = json.loads(sys.stdin.buffer.read())
    try:
        out = handler(request)
    except ClapError as exc:
        print(f"{ERROR_PREFIX}{type(exc).__name__} " + " ".join(str(exc).split()), file=sys.stderr)
        return 1
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0
