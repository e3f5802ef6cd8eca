"""The container images (deploy/image/build: Jib, no Docker daemon, no registry) as OCI tarballs:
their layers, entrypoint, exposed ports, user, model volume and environment, and that they agree
with what deploy/k8s runs them with. The gateway image is also started, as its user, from its
unpacked layers (chroot), on the tiny model mounted at the model directory, until its health check
on the management port says UP.

deploy/local/test builds target/images/gateway.tar and trainer-worker.tar (the worker without its
Python packages: --no-packages) and sets PREFIXGATE_IMAGE_TESTS=1; elsewhere these tests skip when
the tarballs are missing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from .gateway import ROOT, free_port

IMAGES = ROOT / "target" / "images"
K8S = ROOT / "deploy" / "k8s"
MODEL = ROOT / "trainer" / "fixtures" / "tiny-bloom"


@dataclass
class Image:
    name: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    blobs: dict[str, bytes]

    @property
    def run(self) -> dict[str, Any]:
        run: dict[str, Any] = self.config["config"]
        return run

    @property
    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.run.get("Env", []))

    def layer(self, index: int) -> tarfile.TarFile:
        digest = self.manifest["layers"][index]["digest"]
        return tarfile.open(fileobj=io.BytesIO(self.blobs[digest]), mode="r:gz")

    def files(self) -> dict[str, tarfile.TarInfo]:
        """Every path in the image (later layers win), without the leading slash."""
        seen: dict[str, tarfile.TarInfo] = {}
        for i in range(len(self.manifest["layers"])):
            with self.layer(i) as t:
                for m in t.getmembers():
                    seen[m.name.lstrip("./").lstrip("/")] = m
        return seen


def read_image(path: Path) -> Image:
    """An OCI image layout tarball (index.json -> manifest -> config), every digest checked."""
    blobs: dict[str, bytes] = {}
    with tarfile.open(path) as t:
        layout = json.loads(t.extractfile("oci-layout").read())  # type: ignore[union-attr]
        assert layout["imageLayoutVersion"] == "1.0.0"
        index = json.loads(t.extractfile("index.json").read())  # type: ignore[union-attr]
        for m in t.getmembers():
            if m.name.startswith("blobs/sha256/"):
                data = t.extractfile(m).read()  # type: ignore[union-attr]
                digest = "sha256:" + m.name.rsplit("/", 1)[1]
                assert "sha256:" + hashlib.sha256(data).hexdigest() == digest, m.name
                blobs[digest] = data
    [entry] = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    manifest = json.loads(blobs[entry["digest"]])
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(blobs[manifest["config"]["digest"]])
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert layer["digest"] in blobs, "layer blob missing from the tarball"
    return Image(entry["annotations"]["org.opencontainers.image.ref.name"], manifest, config, blobs)


def image(name: str) -> Image:
    path = IMAGES / name
    if not path.exists():
        if os.environ.get("PREFIXGATE_IMAGE_TESTS"):
            pytest.fail(f"{path} is missing: deploy/image/build did not write it")
        pytest.skip(f"{path} not built (deploy/image/build gateway|worker)")
    return read_image(path)


@pytest.fixture(scope="module")
def gateway_image() -> Image:
    return image("gateway.tar")


@pytest.fixture(scope="module")
def worker_image() -> Image:
    return image("trainer-worker.tar")


def k8s_container(doc: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, container) of the Deployment in deploy/k8s/base/<doc>."""
    for obj in yaml.safe_load_all((K8S / "base" / doc).read_text()):
        if obj and obj["kind"] == "Deployment":
            pod: dict[str, Any] = obj["spec"]["template"]["spec"]
            [container] = [c for c in pod["containers"] if c["name"] == name]
            return pod, container
    raise AssertionError(f"no Deployment in {doc}")


def k8s_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def common_checks(img: Image, base: str) -> None:
    run = img.run
    assert img.config["os"] == "linux" and img.config["architecture"] == "amd64"
    # Never root: a numeric user, so runAsNonRoot can verify it without reading /etc/passwd.
    assert run["User"] == "185"
    assert run["Labels"]["dev.prefixgate.base"] == base
    # The base (Debian packages + Java runtime) is the first layer; the application comes after.
    assert img.config["history"][0]["created_by"] == f"deploy/image/base-image {base}"
    files = img.files()
    assert "jboss:x:185:185:" in img.layer(0).extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
    assert "opt/java/bin/java" in files
    assert files["home/jboss"].uid == 185
    # The model directory is a volume, named by PREFIXGATE_MODEL_DIR.
    assert img.env["PREFIXGATE_MODEL_DIR"] == "/models/bloom"
    assert "/models/bloom" in run["Volumes"]
    # Nothing setuid/setgid an unprivileged user could use to become root.
    assert not [n for n, m in files.items() if m.isfile() and m.mode & 0o6000]


def test_gateway_image(gateway_image: Image) -> None:
    img = gateway_image
    common_checks(img, "jvm")
    assert img.name == "prefixgate/gateway:0.1.0"
    assert img.run["Entrypoint"] == [
        "/opt/java/bin/java",
        "-Djava.util.logging.manager=org.jboss.logmanager.LogManager",
        "-jar",
        "/deployments/quarkus-run.jar",
    ]
    assert set(img.run["ExposedPorts"]) == {"8080/tcp", "9000/tcp"}
    assert img.env["DJL_OFFLINE"] == "true"
    # Without it ONNX Runtime 1.29 shells out (no shell here: the JVM crashed) and phones home.
    assert img.env["ORT_DISABLE_TELEMETRY"] == "1"
    # Base, then the fast-jar from the least to the most often changed part.
    assert len(img.manifest["layers"]) == 6
    files = img.files()
    for path in ("deployments/quarkus-run.jar", "deployments/quarkus/quarkus-application.dat",
                 "deployments/app/prefixgate-0.1.0-SNAPSHOT.jar"):
        assert path in files, path
    assert any(n.startswith("deployments/lib/boot/") for n in files)
    assert any(n.startswith("deployments/lib/main/com.microsoft.onnxruntime.onnxruntime") for n in files)


def test_gateway_image_matches_k8s(gateway_image: Image) -> None:
    img = gateway_image
    pod, c = k8s_container("gateway.yaml", "gateway")
    assert c["image"] == img.name
    assert pod["securityContext"]["runAsUser"] == int(img.run["User"])
    assert {f"{p['containerPort']}/tcp" for p in c["ports"]} == set(img.run["ExposedPorts"])
    assert k8s_env(c)["PREFIXGATE_MODEL_DIR"] == img.env["PREFIXGATE_MODEL_DIR"]
    assert {m["mountPath"] for m in c["volumeMounts"]} >= set(img.run["Volumes"])
    # The GPU overlay runs the same repository, tagged -gpu (deploy/image/build with TAG=0.1.0-gpu).
    gpu = yaml.safe_load((K8S / "overlays" / "gpu" / "gateway-gpu.yaml").read_text())
    [gc] = gpu["spec"]["template"]["spec"]["containers"]
    assert gc["image"] == img.name + "-gpu"


def test_worker_image(worker_image: Image) -> None:
    img = worker_image
    common_checks(img, "python")
    assert img.name == "prefixgate/trainer-worker:0.1.0"
    assert img.run["Entrypoint"] == [
        "/opt/java/bin/java", "-jar", "/opt/prefixgate/worker/prefixgate-trainer-worker.jar"]
    assert not img.run.get("ExposedPorts")
    assert "/work" in img.run["Volumes"]
    files = img.files()
    base = {m.name.lstrip("./") for m in img.layer(0).getmembers()}
    # Debian's Python and the virtual environment the job runs in come with the base image.
    for path in ("usr/bin/python3.11", "opt/prefixgate/venv/bin/python", "opt/prefixgate/venv/pyvenv.cfg"):
        assert path in base, path
    for path in ("opt/prefixgate/worker/prefixgate-trainer-worker.jar",
                 "opt/prefixgate/trainer/python/prefixgate_trainer/job.py",
                 "opt/prefixgate/trainer/python/pyproject.toml"):
        assert path in files, path
    assert any(n.startswith("opt/prefixgate/worker/lib/kafka-clients-") for n in files)
    # Byte-code compiled for the image's paths, none of this checkout's caches.
    assert any(n.startswith("opt/prefixgate/trainer/python/prefixgate_trainer/__pycache__/job.cpython-311")
               for n in files)
    packages = img.run["Labels"]["dev.prefixgate.python-packages"]
    assert packages in {"installed", "none"}
    if packages == "installed":
        assert any(n.startswith("opt/prefixgate/venv/lib/python3.11/site-packages/torch/") for n in files)
        assert any(n.startswith("opt/prefixgate/venv/lib/python3.11/site-packages/peft/") for n in files)


def test_worker_image_matches_k8s(worker_image: Image) -> None:
    img = worker_image
    pod, c = k8s_container("trainer.yaml", "worker")
    assert c["image"] == img.name
    assert pod["securityContext"]["runAsUser"] == int(img.run["User"])
    env = k8s_env(c)
    for name in ("PREFIXGATE_MODEL_DIR", "PREFIXGATE_PYTHON", "PREFIXGATE_TRAINER_DIR", "PREFIXGATE_WORK_DIR"):
        assert env[name] == img.env[name], name
    assert {m["mountPath"] for m in c["volumeMounts"]} >= set(img.run["Volumes"])


def unpack(img: Image, into: Path) -> None:
    for i in range(len(img.manifest["layers"])):
        with img.layer(i) as t:
            t.extractall(into, numeric_owner=True, filter="fully_trusted")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root (chroot, mounts)")
def test_gateway_image_starts(gateway_image: Image, tmp_path: Path) -> None:
    """The image's own entrypoint, user, environment and libraries: the JVM, ONNX Runtime and the
    tokenizer's native libraries load from the Debian packages in the base, and the model comes
    from the volume. As a container runtime would: /proc and /dev mounted, the model bind-mounted
    read-only, a private mount namespace; the network is this machine's, so free ports are set."""
    img = gateway_image
    rootfs = tmp_path / "rootfs"
    unpack(img, rootfs)
    model = img.env["PREFIXGATE_MODEL_DIR"]
    http, management = free_port(), free_port()
    env = dict(img.env)
    env.update(QUARKUS_HTTP_PORT=str(http), QUARKUS_MANAGEMENT_PORT=str(management),
               QUARKUS_DATASOURCE_JDBC_URL="jdbc:h2:mem:image-test;DB_CLOSE_DELAY=-1",
               PREFIXGATE_ENGINE_INTRA_OP_THREADS="1")
    setup = (f"mount -t proc proc {rootfs}/proc && mount --rbind /dev {rootfs}/dev && "
             f"mount --rbind /sys {rootfs}/sys && "
             f"mount --bind -o ro {MODEL} {rootfs}{model} && mount -o remount,bind,ro {rootfs}{model} && "
             f'exec chroot --userspec={img.run["User"]}:{img.run["User"]} {rootfs} "$@"')
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", setup, "sh",
                             *img.run["Entrypoint"]], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "gateway.log").read_text()[-4000:]
            try:
                r = httpx.get(f"http://127.0.0.1:{management}/q/health/ready", timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()[-4000:]
            time.sleep(0.5)
        assert r.json()["status"] == "UP"
        models = httpx.get(f"http://127.0.0.1:{http}/v1/models", timeout=5)
        assert models.status_code in (200, 401)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
