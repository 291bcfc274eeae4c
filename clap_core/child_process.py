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


def run_child(module: str, request: dict[str, Any], what: str, timeout_s: float = 600.0) -> bytes:
    """The child's stdout. A `ClapError` raised in the child comes back with its own message;
    anything else as the last line of its stderr. `what` names the job in errors."""
    try:
        done = subprocess.run([sys.executable, "-c", _BOOT, str(os.getpid()), module],
                              input=json.dumps(request).encode(), capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ClapError(f"the {what} child process gave no answer in {timeout_s:.0f} s") from None
    if done.returncode != 0:
        raise _child_error(done.stderr.decode(errors="replace"), done.returncode, what)
    return done.stdout


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
