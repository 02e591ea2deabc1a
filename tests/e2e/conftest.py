"""Shared fixtures for the end-to-end tests.

Nothing here builds Rust code: the binary comes from $OPENKVS_BIN (default target/debug/openkvs,
relative to the repository root). Every server runs on 127.0.0.1:<free port> with a temporary data
directory; its stdout/stderr go to files in that directory and are printed when a start fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).parent))

import mkv  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
REGION = "us-east-1"
ACCESS_KEY = "AKIDOPENKVSTEST0000"
SECRET_KEY = "openkvs/test/secret/key/0000000000000000"
START_TIMEOUT = float(os.environ.get("OPENKVS_START_TIMEOUT", "30"))


def openkvs_bin() -> str:
    b = os.environ.get("OPENKVS_BIN", "target/debug/openkvs")
    p = Path(b)
    if not p.is_absolute():
        p = ROOT / p
    return str(p)


def aws_cli() -> list[str]:
    """The AWS CLI: `aws` on PATH, else the awscli module of this Python."""
    exe = shutil.which("aws")
    return [exe] if exe else [sys.executable, "-m", "awscli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict:
    """Environment for client processes (AWS CLI, openkvs put-media): isolated from the host's AWS config."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("AWS_"):
            del env[k]
    env.update({
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
    })
    return env


class Server:
    """One `openkvs serve` process; restartable on the same port and data directory."""

    def __init__(self, workdir: Path, credentials: list[tuple[str, str]] | None = None,
                 extra_args: list[str] | None = None, extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.credentials_file = None
        if credentials:
            self.credentials_file = workdir / "credentials.toml"
            self.credentials_file.write_text("".join(
                f'[[credentials]]\naccess_key_id = "{a}"\nsecret_access_key = "{s}"\n\n' for a, s in credentials))
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def args(self) -> list[str]:
        a = [openkvs_bin(), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)]
        if self.credentials_file:
            a += ["--credentials", str(self.credentials_file)]
        return a + self.extra_args

    def log_path(self, n: int | None = None) -> Path:
        return self.workdir / f"server.{self.starts if n is None else n}.log"

    def start(self):
        if not os.path.exists(openkvs_bin()):
            pytest.fail(f"openkvs binary not found at {openkvs_bin()} (set OPENKVS_BIN or run cargo build -p openkvs)")
        self.starts += 1
        log = open(self.log_path(), "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENKVS_") and not k.startswith("AWS_")}
        env.setdefault("RUST_LOG", "info")
        env.update(self.extra_env)
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"openkvs serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill9()
        pytest.fail(f"openkvs serve did not accept connections on {self.port} in {START_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path().read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- clients --------------------------------------------------------------------------------

    def client(self, service: str = "kinesisvideo", access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60))

    def kv(self):
        return self.client("kinesisvideo")

    def am(self):
        return self.client("kinesis-video-archived-media")

    def aws(self, *args, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY, timeout: float = 60):
        """Run the real AWS CLI; returns (exit code, parsed JSON stdout or None, stderr)."""
        cmd = [*aws_cli(), "--endpoint-url", self.endpoint, "--region", REGION, "--output", "json", *map(str, args)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=client_env(access_key, secret_key))
        out = None
        if p.stdout.strip():
            try:
                out = json.loads(p.stdout)
            except ValueError:
                out = p.stdout
        return p.returncode, out, p.stderr

    def put_media(self, stream: str, source, *args, stdin=None, timeout: float = 120):
        """Run `openkvs put-media`; returns (exit code, summary dict or None, stderr)."""
        cmd = [openkvs_bin(), "put-media", "--stream-name", stream, "--endpoint-url", self.endpoint,
               *map(str, args), str(source)]
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=client_env(), input=stdin)
        return p.returncode, parse_summary(p.stdout.decode(errors="replace")), p.stderr.decode(errors="replace")

    def put_media_popen(self, stream: str, source, *args, **kw) -> subprocess.Popen:
        cmd = [openkvs_bin(), "put-media", "--stream-name", stream, "--endpoint-url", self.endpoint,
               *map(str, args), str(source)]
        return subprocess.Popen(cmd, env=client_env(), **kw)

    def create_stream(self, name: str | None = None, retention: int = 24, **kw) -> tuple[str, str]:
        name = name or unique_name()
        arn = self.kv().create_stream(StreamName=name, DataRetentionInHours=retention, **kw)["StreamARN"]
        return name, arn


def parse_summary(stdout: str):
    """The last JSON object line of put-media's stdout."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def read_acks(path) -> list[dict]:
    acks = []
    try:
        with open(path, "r", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        acks.append(json.loads(line))
                    except ValueError:
                        pass
    except FileNotFoundError:
        pass
    return acks


def unique_name(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def workroot():
    d = Path(tempfile.mkdtemp(prefix="openkvs-e2e-"))
    yield d
    if os.environ.get("OPENKVS_KEEP_TMP") != "1":
        shutil.rmtree(d, ignore_errors=True)


def _make_server(workroot: Path, **kw) -> Server:
    d = workroot / uuid.uuid4().hex[:8]
    d.mkdir()
    return Server(d, **kw)


@pytest.fixture(scope="module")
def server(workroot):
    """A server shared by the tests of one module (no credentials: any well-formed signature)."""
    s = _make_server(workroot).start()
    yield s
    s.stop()


@pytest.fixture
def fresh_server(workroot):
    """A server of one's own (for restarts, kill -9, exact listings)."""
    s = _make_server(workroot).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def auth_server(workroot):
    """A server that verifies signatures against one configured key pair."""
    s = _make_server(workroot, credentials=[(ACCESS_KEY, SECRET_KEY)]).start()
    yield s
    s.stop()


@pytest.fixture
def server_factory(workroot):
    made = []

    def make(**kw):
        s = _make_server(workroot, **kw).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="session")
def fixture_files() -> dict[str, Path]:
    return {p.name: p for p in sorted(FIXTURES.glob("*.mkv"))}


@pytest.fixture(scope="session")
def oracle():
    """fixture name -> parsed Mkv (the independent cluster counter)."""
    cache = {}

    def get(name: str) -> mkv.Mkv:
        if name not in cache:
            cache[name] = mkv.parse_file(FIXTURES / name)
        return cache[name]

    return get


# Figures a test measured (latencies, rates): printed in pytest's terminal summary, so a CI log shows
# them without -s. Nothing is asserted on them here (the machines are shared).
_FIGURES: list[tuple[str, str]] = []


@pytest.fixture
def report_figure(request):
    """report_figure(dict or text): kept under the test's name for the terminal summary."""
    def report(value):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        _FIGURES.append((request.node.nodeid, text))
    return report


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures")
        for test, text in _FIGURES:
            terminalreporter.write_line(f"{test}: {text}")
