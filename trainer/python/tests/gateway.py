"""Starts the packaged gateway (target/quarkus-app, demo profile) as a real process for tests."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
JAR = ROOT / "target" / "quarkus-app" / "quarkus-run.jar"
ADMIN_KEY = "pg-admin-demo"
TRAINER_KEY = "pg-trainer-demo"


def require_jar() -> None:
    if not JAR.exists():
        if os.environ.get("PREFIXGATE_SERVER_TESTS") == "1":
            pytest.fail(f"{JAR} is missing: build the gateway first")
        pytest.skip("gateway not built (run deploy/local/test)")


def _ephemeral_ports() -> range:
    """The ports the kernel hands out as the local end of outgoing connections."""
    try:
        lo, hi = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return range(lo, hi + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port(taken: tuple[int, ...] = ()) -> int:
    """A port that is free now, outside the ephemeral range. A port the kernel picks for a bind
    to 0 is an ephemeral one, and until the gateway binds it, any outgoing connection of the
    processes beside the tests (Kafka clients, PostgreSQL, the fuzzers' JVMs) can take it. Below
    that range only another test's explicit bind can, and `Gateway.start` retries on that."""
    eph = _ephemeral_ports()
    pool = range(20000, eph.start) if eph.start > 21000 else range(eph.stop, 65536)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(pool)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {pool.start}..{pool.stop - 1}")


def _answers(url: str, want_ok: bool = False) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return not want_ok or r.status == 200
    except urllib.error.HTTPError:
        return not want_ok
    except OSError:
        return False


class _PortTaken(RuntimeError):
    pass


class Gateway:
    """One gateway process on a free port with its own H2 file database under `data`, or the
    database that `env` names (QUARKUS_DATASOURCE_* variables, the way a deployment configures it)."""

    def __init__(self, data: Path, topics: str | None = None, env: dict[str, str] | None = None) -> None:
        data.mkdir(parents=True, exist_ok=True)
        """`topics` names this test's Kafka topics (gateways that share it see the same events)."""
        self.data = data
        self.env = env or {}
        self.topics = topics or uuid.uuid4().hex[:8]
        self.proc: subprocess.Popen[bytes] | None = None
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Health, metrics and OpenAPI live on the management interface, its own port.
        self.management_port = free_port(taken=(self.port,))
        self.management_url = f"http://127.0.0.1:{self.management_port}"
        self.log_path = self.data / f"gateway-{self.port}.log"

    def start(self) -> Gateway:
        """Starts the gateway and waits until it is ready. A port another process bound since it
        was picked fails the start with a BindException: then it takes two fresh ports, twice at
        most (a caller reads `url` after `start`)."""
        for attempt in range(3):
            try:
                return self._start()
            except _PortTaken:
                if attempt == 2:
                    raise
                self._pick_ports()
        raise AssertionError("unreachable")

    def _start(self) -> Gateway:
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                "java", "-Dquarkus.profile=demo", f"-Dquarkus.http.port={self.port}",
                f"-Dquarkus.management.port={self.management_port}",
                *([] if "QUARKUS_DATASOURCE_JDBC_URL" in self.env else
                  [f"-Dquarkus.datasource.jdbc.url=jdbc:h2:file:{self.data}/db;DB_CLOSE_ON_EXIT=FALSE;WRITE_DELAY=0"]),
                "-Dprefixgate.engine.intra-op-threads=1",
                f"-Dprefixgate.kafka.bootstrap-servers={BOOTSTRAP}",
                f"-Dprefixgate.kafka.adapters-topic={topic('adapters', self.topics)}",
                f"-Dprefixgate.kafka.dead-letters-topic={topic('dead', self.topics)}",
                f"-Dprefixgate.kafka.retrain-topic={topic('retrain', self.topics)}",
                f"-Dprefixgate.kafka.status-topic={topic('status', self.topics)}",
                f"-Dprefixgate.admin.public-url={self.url}",
                "-jar", str(JAR),
            ],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DJL_OFFLINE": "true", **self.env},
        )
        deadline = time.time() + 90
        while True:
            # The management interface binds and reports ready before the public port is bound:
            # ready means both answer (any HTTP status from the public port will do).
            if _answers(self.management_url + "/q/health/ready", want_ok=True) and _answers(self.url + "/"):
                return self
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                text = self.log_path.read_text()
                # The management interface's bind failure logs its BindException, the public
                # port's only Quarkus's line about the port.
                if "java.net.BindException" in text or "seems to be in use by another process" in text:
                    raise _PortTaken("gateway did not start, a port was taken:\n" + text[-3000:])
                raise RuntimeError("gateway did not start:\n" + text[-3000:])
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


KAFKA = ROOT / "deploy" / "local" / "kafka"
# The broker the tests use: deploy/local/kafka's, on $KAFKA_PORT as that script reads it (the test
# command gives the tests that kill their broker one of their own, so they run beside the others).
KAFKA_PORT = int(os.environ.get("KAFKA_PORT", "9092"))
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
# The production names' prefixes: the local broker's ACLs (deploy/local/kafka-broker/Acls.java) are
# prefix bindings, so a test's own topics get exactly the rights of the real ones.
TOPICS = {
    "adapters": "prefixgate.adapters",
    "dead": "prefixgate.dead-letters",
    "retrain": "prefixgate.retrain-requests",
    "status": "prefixgate.training-status",
}


def topic(kind: str, topics: str) -> str:
    """This test's topic of one kind, e.g. `prefixgate.adapters.pytest-<topics>`."""
    return f"{TOPICS[kind]}.pytest-{topics}"


def client_config(user: str) -> str:
    """The local broker's client properties (SASL login) for one of its users."""
    out = subprocess.run([str(KAFKA), "client-config", user], check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def require_broker() -> None:
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", KAFKA_PORT)) != 0:
            if os.environ.get("PREFIXGATE_SERVER_TESTS") == "1":
                pytest.fail(f"no Kafka broker on {BOOTSTRAP} (deploy/local/kafka start)")
            pytest.skip("no Kafka broker (deploy/local/kafka start)")


def publish(topic: str, key: str, value: str, user: str = "trainer") -> None:
    """Produces one record with the broker's own console producer (no Python Kafka client here),
    logged in as `user`: `trainer` publishes adapter events, `ops` may ask for retraining. `--sync`
    makes a refused record (no ACL) fail the call instead of vanishing."""
    subprocess.run(
        [str(KAFKA), "tool", "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", BOOTSTRAP,
         "--producer.config", client_config(user), "--producer-property", "max.block.ms=20000", "--sync",
         "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=\t"],
        input=f"{key}\t{value}\n", text=True, check=True, capture_output=True, timeout=60,
    )


def create_topic(name: str, user: str) -> None:
    """Creates a topic, logged in as `user`, unless it exists. Deployments create topics before
    consumers start; the trainer may not create the retrain topic (no CREATE ACL), and a worker
    whose first metadata request comes before the topic exists gets TOPIC_AUTHORIZATION_FAILED."""
    subprocess.run(
        [str(KAFKA), "tool", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", BOOTSTRAP,
         "--command-config", client_config(user), "--create", "--if-not-exists", "--topic", name],
        check=True, capture_output=True, timeout=60,
    )


WORKER_JAR = ROOT / "trainer" / "target" / "prefixgate-trainer-worker.jar"


def start_worker(topics: str, log: Path, gateway_url: str = "http://127.0.0.1:8080") -> subprocess.Popen[bytes]:
    """The Java trainer worker, following this test's topics, training with this interpreter."""
    if not WORKER_JAR.exists():
        if os.environ.get("PREFIXGATE_SERVER_TESTS") == "1":
            pytest.fail(f"{WORKER_JAR} is missing: build trainer/ first")
        pytest.skip("trainer worker not built (cd trainer && ../mvnw package)")
    import sys

    create_topic(topic("retrain", topics), "ops")
    return subprocess.Popen(
        ["java", "-jar", str(WORKER_JAR), "--kafka-bootstrap", BOOTSTRAP,
         "--group-id", f"prefixgate-trainers-pytest-{topics}",
         "--retrain-topic", topic("retrain", topics), "--status-topic", topic("status", topics),
         "--adapters-topic", topic("adapters", topics), "--python", sys.executable,
         "--kafka-security-protocol", "SASL_PLAINTEXT", "--kafka-username", "trainer",
         "--trainer-dir", str(ROOT / "trainer" / "python"),
         "--model-dir", str(ROOT / "trainer" / "fixtures" / "tiny-bloom"),
         "--gateway-url", gateway_url, "--work-dir", str(log.parent), "--timeout-seconds", "300"],
        cwd=ROOT, stdout=open(log, "a"), stderr=subprocess.STDOUT,
        env={**os.environ, "PREFIXGATE_TRAINER_KEY": TRAINER_KEY,
             "PREFIXGATE_KAFKA_PASSWORD": "pg-kafka-trainer-local"},
    )
