"""One artifact, two databases: the packaged jar that serves on H2 by default serves on PostgreSQL
when only the QUARKUS_DATASOURCE_* environment names it (no rebuild, no -D flag)."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from .gateway import ADMIN_KEY, ROOT, Gateway, require_jar

POSTGRES = ROOT / "deploy" / "local" / "postgres"
PGPORT = int(os.environ.get("PGPORT", "5433"))


def require_postgres() -> None:
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", PGPORT)) != 0:
            if os.environ.get("PREFIXGATE_SERVER_TESTS") == "1":
                pytest.fail(f"no PostgreSQL on 127.0.0.1:{PGPORT} (deploy/local/postgres start)")
            pytest.skip("no PostgreSQL (deploy/local/postgres start)")


def psql(db: str, sql: str) -> str:
    """One query through the server's own client, as the postgres user (trust authentication)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), key=lambda p: int(p.parts[-3]))
    out = subprocess.run(
        [str(bins[-1]), "-h", "127.0.0.1", "-p", str(PGPORT), "-U", "postgres", "-At", "-c", sql, db],
        check=True, capture_output=True, text=True, timeout=30,
    )
    return out.stdout.strip()


def test_the_packaged_jar_serves_on_postgres_from_the_environment(tmp_path: Path) -> None:
    require_jar()
    require_postgres()
    db = f"prefixgate_pytest_{uuid.uuid4().hex[:8]}"
    subprocess.run([str(POSTGRES), "reset", db], check=True, timeout=60)
    env = {
        "QUARKUS_DATASOURCE_JDBC_URL": f"jdbc:postgresql://127.0.0.1:{PGPORT}/{db}",
        "QUARKUS_DATASOURCE_USERNAME": "postgres",
        "QUARKUS_DATASOURCE_PASSWORD": "unused-with-trust-auth",
    }
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        g = Gateway(tmp_path / "gw", env=env).start()
        try:
            # Flyway migrated PostgreSQL (every migration, in order) and the demo seeding wrote to it.
            versions = psql(db, "select version from flyway_schema_history where success order by installed_rank")
            assert versions.split() == [str(v) for v in range(1, 9)], versions
            assert "acme" in psql(db, "select id from tenant").split()
            r = httpx.post(g.url + "/v1/completions", headers={"Authorization": "Bearer pg-demo-acme"},
                           json={"model": "pirate", "prompt": "Hi", "max_tokens": 2}, timeout=60)
            assert r.status_code == 200, r.text
            r = httpx.post(g.url + "/admin/tenants", headers=admin, json={"id": "on-postgres"})
            assert r.status_code == 201, r.text
            key = r.json()["apiKey"]
            # The replica says which database it serves from (readiness data), and it is this one.
            ready = httpx.get(g.management_url + "/q/health/ready", timeout=30).json()
            registry = next(c for c in ready["checks"] if c["name"] == "registry")
            assert registry["data"]["databaseKind"] == "postgresql", ready
        finally:
            g.stop()
        # The write is in PostgreSQL.
        assert psql(db, "select count(*) from tenant where id = 'on-postgres'") == "1"
        # A second start on the same database serves the tenant created by the first.
        again = Gateway(tmp_path / "gw2", env=env).start()
        try:
            r = httpx.get(again.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert r.status_code == 200, r.text
        finally:
            again.stop()
    finally:
        psql("postgres", f'drop database if exists "{db}" with (force)')
