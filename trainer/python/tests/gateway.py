"""Starts the packaged gateway (target/quarkus-app, demo profile) as a real process for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
JAR = ROOT / "target" / "quarkus-app" / "quarkus-run.jar"
ADMIN_KEY = "pg-admin-demo"


def require_jar() -> None:
    if not JAR.exists():
        if os.environ.get("PREFIXGATE_SERVER_TESTS") == "1":
            pytest.fail(f"{JAR} is missing: build the gateway first")
        pytest.skip("gateway not built (run deploy/local/test)")


class Gateway:
    """One gateway process on a free port with its own H2 file database under `data`."""

    def __init__(self, data: Path) -> None:
        self.data = data
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Gateway":
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                "java", "-Dquarkus.profile=demo", f"-Dquarkus.http.port={self.port}",
                f"-Dquarkus.datasource.jdbc.url=jdbc:h2:file:{self.data}/db;DB_CLOSE_ON_EXIT=FALSE",
                "-Dprefixgate.engine.intra-op-threads=1", "-jar", str(JAR),
            ],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DJL_OFFLINE": "true"},
        )
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(self.url + "/q/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("gateway did not start:\n" + self.log_path.read_text()[-3000:])
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
