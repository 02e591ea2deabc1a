"""The engines a scale-out openkvs runs on, started for a test: a private PostgreSQL 15 cluster
(initdb + pg_ctl, unix socket only, in a temporary directory; as `nobody` when root, since
PostgreSQL refuses root), a single-node Garage (scripts/garage.sh, the one place its set-up lives),
and a TCP proxy standing in for the load balancer in front of the nodes.

Nothing here installs anything: scripts/test.sh installs postgresql-15 and builds Garage (cached).
A missing engine fails the test that needs it, with the command that provides it.
"""

from __future__ import annotations

import os
import pwd
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
GARAGE_SCRIPT = ROOT / "scripts" / "garage.sh"


class Postgres:
    """A private PostgreSQL 15 cluster listening on a unix socket only."""

    def __init__(self):
        # Its own directory under the system temp dir: as `nobody`, PostgreSQL must reach it, and
        # pytest's temporary directories are owner-only.
        self.root = Path(tempfile.mkdtemp(prefix="openkvs-pg-"))
        root = self.root
        self.data = root / "pgdata"
        self.sock = root / "pgsock"
        self.port = free_port()  # only names the socket file
        self.as_nobody = os.geteuid() == 0

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        if self.as_nobody:
            cmd = ("runuser", "-u", "nobody", "--", *cmd)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def start(self) -> "Postgres":
        if not (PG_BIN / "initdb").exists():
            pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing): "
                        "apt-get install postgresql-15 (scripts/test.sh does)")
        for d in (self.data, self.sock):
            d.mkdir()
        if self.as_nobody:
            os.chmod(self.root, 0o755)
            pw = pwd.getpwnam("nobody")
            for d in (self.data, self.sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-locale", "-E", "UTF8", "--no-sync")
        return self.start_server()

    def start_server(self) -> "Postgres":
        """Starts the cluster's server (again, after `stop_server`)."""
        opts = (f"-k {self.sock} -c listen_addresses='' -p {self.port} -c fsync=off "
                "-c max_connections=300")
        log = self.sock / "server.log"
        p = self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(log), "-w",
                      "start", check=False)
        if p.returncode != 0:
            pytest.fail(f"pg_ctl start failed:\n{p.stderr}\n{log.read_text(errors='replace') if log.exists() else ''}")
        return self

    def stop_server(self):
        """Stops the server (fast shutdown: every client connection is closed), keeping the data."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """Creates `name`; returns the URL openkvs takes (`--catalog`)."""
        self._run(str(PG_BIN / "createdb"), "-h", str(self.sock), "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgresql://postgres@localhost/{db}?host={self.sock}&port={self.port}"

    def stop(self):
        if self.data.exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


class Garage:
    """A single-node Garage with bucket `openkvs` and a key (scripts/garage.sh start/stop)."""

    def __init__(self, root: Path):
        self.root = root
        self.env: dict[str, str] = {}

    def start(self) -> "Garage":
        self.root.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([str(GARAGE_SCRIPT), "start", str(self.root)], capture_output=True, text=True,
                           timeout=180)
        if p.returncode != 0:
            pytest.fail(f"scripts/garage.sh start failed ({p.returncode}); run `scripts/garage.sh build` "
                        f"(scripts/test.sh does):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        for line in (self.root / "env").read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                self.env[k.strip()] = v.strip()
        return self

    def node_env(self) -> dict[str, str]:
        """What `openkvs serve` needs to reach the bucket (credentials only from OPENKVS_S3_*)."""
        return {k: v for k, v in self.env.items()
                if k in ("OPENKVS_S3_ACCESS_KEY_ID", "OPENKVS_S3_SECRET_ACCESS_KEY")}

    def media_args(self, prefix: str) -> list[str]:
        return ["--media", f"s3://{self.env['OPENKVS_S3_BUCKET']}/{prefix}",
                "--s3-endpoint", self.env["OPENKVS_S3_ENDPOINT"],
                "--s3-region", self.env["OPENKVS_S3_REGION"]]

    def pid(self) -> int:
        return int((self.root / "garage.pid").read_text().strip())

    def stop(self):
        try:
            os.kill(self.pid(), signal.SIGCONT)
        except (OSError, ValueError):
            pass
        subprocess.run([str(GARAGE_SCRIPT), "stop", str(self.root)], capture_output=True, timeout=60)


class Balancer:
    """A TCP proxy on 127.0.0.1:<port> forwarding every new connection to the current target, like
    the load balancer in front of a cluster. Connections already open stay with their node (and
    break when it dies); `point_at` changes where new ones go."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def point_at(self, port: int):
        self.target = port

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._pipe, args=(client, self.target), daemon=True).start()

    @staticmethod
    def _pipe(client: socket.socket, port: int):
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in sel.select(timeout=60):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self):
        self._stop.set()
        self.listener.close()


def need_garage_script():
    if not GARAGE_SCRIPT.exists():
        pytest.fail(f"{GARAGE_SCRIPT} is missing")
    if shutil.which("runuser") is None and os.geteuid() == 0:
        pytest.fail("runuser (util-linux) is needed to run PostgreSQL as nobody")


def wait_until(predicate, timeout: float, interval: float = 0.02):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
