"""A local polymon stack made of real parts: the embedded broker, topics, and worker
processes. Used by `polymon demo`, the benchmarks and the integration tests alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from streams.processes import OwnedProcess, free_port


class WorkerError(RuntimeError):
    """A worker process did not become ready."""


def worker_env(bootstrap: str, **overrides: Any) -> dict[str, str]:
    """The environment of a worker process: ours without our settings (the native-parts
    switch stays: a pure run stays pure), pointed at ``bootstrap``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("POLYMON_") or k == "POLYMON_NO_EXTENSIONS"}
    env["POLYMON_KAFKA_BOOTSTRAP"] = bootstrap
    for name, value in overrides.items():
        env[f"POLYMON_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, dict | list) else str(value)
        )
    return env


def http_json(url: str, timeout_s: float = 2.0) -> tuple[int, Any]:
    """GET ``url``; (status, parsed JSON body). Raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"null")
        except ValueError:
            return exc.code, body.decode(errors="replace")


class WorkerProcess(OwnedProcess):
    """One `polymon worker` child process with its own web port and log file."""

    def __init__(self, bootstrap: str, state_dir: Path, worker_id: str = "worker-1",
                 web_port: int = 0, **settings: Any) -> None:
        self.worker_id = worker_id
        self.web_port = web_port or free_port()
        self.state_dir = Path(state_dir)
        self.log_path = self.state_dir / f"{worker_id}.log"
        self.env = worker_env(bootstrap, worker_id=worker_id, web_port=self.web_port,
                              state_dir=self.state_dir, **settings)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.spawn([sys.executable, "-m", "streams", "worker"], self.env)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Block until /healthz says the worker has partitions and recovered tables."""
        deadline = time.monotonic() + timeout_s
        last: Any = "no answer"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise WorkerError(
                    f"{self.worker_id} exited ({self.exit_code}):\n{self.log_tail()}"
                )
            try:
                status, last = http_json(f"{self.url}/healthz")
                if status == 200:
                    return last
            except OSError:
                pass
            time.sleep(0.2)
        raise WorkerError(
            f"{self.worker_id} not ready in {timeout_s}s ({last}):\n{self.log_tail()}"
        )

    def get(self, path: str) -> Any:
        status, body = http_json(f"{self.url}{path}")
        if status != 200:
            raise WorkerError(f"GET {path}: HTTP {status}: {body}")
        return body

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:
            return response.read().decode()

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()
