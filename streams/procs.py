"""Stopping the processes we started: by PID, with bounded waits, escalating to SIGKILL.

A Faust worker can hang on shutdown when its broker is gone, so every stop has a
deadline.
"""

from __future__ import annotations

import signal
import subprocess


def stop_process(
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    timeout_s: float = 10.0,
    sig: int = signal.SIGTERM,
) -> int:
    """Signal ``process``, wait up to ``timeout_s``, then SIGKILL it. Returns its exit code."""
    if process.poll() is not None:
        return process.returncode
    try:
        process.send_signal(sig)
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=timeout_s)
