"""The CI soak: bench/soak.py --ci (32 SSE streams for 2 minutes against the packaged gateway, with
disconnects, cancels, uploads, activation flips and key rotation) must pass all of its checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .gateway import JAR, ROOT, require_jar

SOAK = ROOT / "bench" / "soak.py"


def test_ci_soak(tmp_path: Path) -> None:
    require_jar()
    out = subprocess.run(
        [sys.executable, str(SOAK), "--ci", "--jar", str(JAR), "--data", str(tmp_path / "gateway")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    print(out.stdout)
    assert out.returncode == 0, f"soak exited {out.returncode}:\n{out.stdout[-8000:]}\n{out.stderr[-3000:]}"
