"""openkvs-load (crates/loadgen, docs/capacity.md) works end to end: a short run with 2 producers and 4 viewers
against a real server gets PERSISTED acks, playlists and fragments, and no error of any kind. Timings are not
asserted (the machine may be busy); the criteria are the benchmark's business (scripts/bench-load.sh)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, client_env, openkvs_bin


def load_bin() -> str:
    default = Path(openkvs_bin()).parent / "openkvs-load"
    return os.environ.get("OPENKVS_LOAD_BIN", str(default))


def test_short_run_reports_acks_and_playlists_without_errors(server):
    if not os.path.exists(load_bin()):
        pytest.fail(f"openkvs-load not found at {load_bin()} (set OPENKVS_LOAD_BIN or run cargo build -p loadgen)")
    cmd = [load_bin(), "--endpoint", server.endpoint, "--producers", "2", "--viewers", "4",
           "--duration", "5", "--ramp-seconds", "1", "--settle-seconds", "3",
           "--fixture", str(FIXTURES / "h264_aac.mkv"), "--stream-prefix", "loadtool",
           # No latency criterion here: only that everything was answered.
           "--max-persist-ms", "1e9", "--max-playlist-ms", "1e9",
           "--server-pid", str(server.proc.pid)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=client_env())
    assert p.stdout.strip(), p.stderr
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert (report["producers"], report["viewers"], report["viewers_playing"]) == (2, 4, 4), p.stderr
    assert report["persisted"] >= 4 and report["persist_ms"]["count"] >= 4, p.stderr
    assert report["playlist_ms"]["count"] >= 8 and report["fragment_ms"]["count"] >= 4, p.stderr
    for key in ("error_acks", "unacknowledged", "producer_failures", "control_errors", "non_200", "http_errors"):
        assert report[key] == 0, (key, p.stderr)
    assert report["passed"] is True and p.returncode == 0, p.stderr
    assert report["client_cpu_percent"] is not None and report["server_cpu_percent"] is not None
    # The table goes to stderr.
    assert "PERSISTED ack" in p.stderr and "PASS" in p.stderr
