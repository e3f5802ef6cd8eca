"""Adapter events (deploy/schemas/adapter-event.schema.json) built from a PEFT save_pretrained folder."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from .fingerprint import model_fingerprint


def adapter_event(
    tenant: str,
    adapter: str,
    adapter_dir: Path,
    model_dir: Path,
    *,
    activate: str = "always",
    request_id: str | None = None,
    metrics: dict[str, Any] | None = None,
    source: str = "trainer",
    producer: str = "prefixgate-trainer",
) -> dict[str, Any]:
    """`producer` names who publishes it; the trainer worker replaces it with its Kafka principal."""
    weights = (adapter_dir / "adapter_model.safetensors").read_bytes()
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    event: dict[str, Any] = {
        "eventId": str(uuid.uuid4()),
        "producer": producer,
        "tenant": tenant,
        "adapter": adapter,
        "baseModel": {
            "fingerprint": model_fingerprint(model_dir),
            "name": config.get("base_model_name_or_path") or "",
        },
        "peftConfig": config,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "safetensors": base64.b64encode(weights).decode("ascii"),
        "activate": activate,
        "source": source,
    }
    if request_id:
        event["requestId"] = request_id
    if metrics:
        event["metrics"] = metrics
    return event
