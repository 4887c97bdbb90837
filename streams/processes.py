"""The processes polymon starts (workers, brokers): spawned to die with their parent,
stopped by PID with bounded waits, escalating to SIGKILL.

A Faust worker can hang on shutdown when its broker is gone, so every stop has a
deadline.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now, for a child process to listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """A ``preexec_fn``: the child gets SIGKILL when the process that started it dies, even
    by SIGKILL, so that no broker or worker outlives the command that owns it (Linux;
    elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


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


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, their children, …), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name (in parentheses) may hold spaces: fields follow the last ')'
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found.update(children)
        frontier.extend(children)
    return found


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class OwnedProcess:
    """A child process this program started, its output appended to ``log_path``: stopped by
    PID with a bounded wait, killed with the program if the program dies first."""

    process: subprocess.Popen[bytes] | None = None
    stop_timeout_s: float = 15.0
    log_path: Path  # an attribute or a property of the subclass

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL after the bound; the exit code (None: nothing running)."""
        if self.process is None:
            return None
        code = stop_process(self.process, self.stop_timeout_s if timeout_s is None
                            else timeout_s)
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"
