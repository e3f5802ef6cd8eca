"""Demo keys never open a production start: the published pg-demo-* keys are in the README."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from .gateway import JAR, ROOT, Gateway, require_jar


def test_a_production_start_on_a_demo_database_refuses_to_serve(tmp_path: Path) -> None:
    require_jar()
    demo = Gateway(tmp_path / "gw").start()
    try:
        r = httpx.get(demo.url + "/v1/models", headers={"Authorization": "Bearer pg-demo-acme"})
        assert r.status_code == 200, r.text
    finally:
        demo.stop()
    db = f"jdbc:h2:file:{tmp_path / 'gw'}/db;DB_CLOSE_ON_EXIT=FALSE"
    prod = subprocess.run(
        ["java", "-Dquarkus.profile=prod", "-Dquarkus.http.port=0", "-Dquarkus.management.port=0",
         f"-Dquarkus.datasource.jdbc.url={db}",
         "-Dprefixgate.engine.intra-op-threads=1", "-jar", str(JAR)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "DJL_OFFLINE": "true"},
    )
    out = prod.stdout + prod.stderr
    assert prod.returncode != 0, out[-3000:]
    assert "accepts the published demo key of tenant 'acme'" in out, out[-3000:]
    assert "pg-demo-acme" not in out, "a key must never reach the log"


def test_the_public_port_serves_no_management_routes(tmp_path: Path) -> None:
    """Metrics name every tenant: they, health, OpenAPI and Swagger UI are on the management port."""
    require_jar()
    g = Gateway(tmp_path / "gw").start()
    try:
        r = httpx.post(g.url + "/v1/completions", headers={"Authorization": "Bearer pg-demo-acme"},
                       json={"model": "pirate", "prompt": "Hi", "max_tokens": 2}, timeout=60)
        assert r.status_code == 200, r.text
        for path in ("/q/metrics", "/q/health/ready", "/q/openapi", "/q/swagger-ui/"):
            assert httpx.get(g.url + path).status_code == 404, path
        metrics = httpx.get(g.management_url + "/q/metrics")
        assert metrics.status_code == 200
        assert 'prefixgate_requests_total{status="200",tenant="acme"}' in metrics.text
        assert "/v1/chat/completions" in httpx.get(g.management_url + "/q/openapi").text
        # The demo profile alone switches Swagger UI on (a production start leaves it off).
        assert httpx.get(g.management_url + "/q/swagger-ui/").status_code == 200
    finally:
        g.stop()
