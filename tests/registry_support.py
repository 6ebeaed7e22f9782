"""A real registry on 127.0.0.1 for tests (uvicorn in a thread), and a throw-away PostgreSQL.

PostgreSQL: `scripts/test.sh` starts one (initdb + pg_ctl on a private data folder and port)
and exports FAKESTUDIO_TEST_PG; without it the tests start their own here when the server
binaries exist, and skip with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_registry(storage, **cfg):
    import uvicorn

    from fakestudio.registry.app import RegistryConfig, create_app

    app = create_app(storage, RegistryConfig(**cfg))
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test registry did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def pg_bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for v in sorted(root.iterdir(), reverse=True):
            if (v / "bin" / "pg_ctl").exists():
                return v / "bin"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """initdb + pg_ctl on a private folder and port; as a non-root user when we are root."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.port = free_port()
        self.bin = pg_bin_dir()
        self.user = None
        if os.geteuid() == 0:
            self.user = "nobody"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args):
        cmd = [str(self.bin / args[0]), *map(str, args[1:])]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.folder, self.user)
            os.chmod(self.folder, 0o700)
        self._run(
            "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"
        )
        self._run(
            "pg_ctl",
            "-D",
            self.data,
            "-w",
            "-l",
            self.folder / "log",
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        return self.url

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        except Exception:  # noqa: BLE001
            pass
