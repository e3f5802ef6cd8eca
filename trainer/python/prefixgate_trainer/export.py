"""ONNX export of a BLOOM with explicit KV-cache inputs and outputs (the model-directory contract).

One graph serves prefill and decode:
  inputs  input_ids [batch, seq] int64, attention_mask [batch, past + seq] int64,
          past_key_values.{i}.key / .value [batch, n_head, past, head_dim] float32
  outputs logits [batch, seq, vocab] float32, present.{i}.key / .value [batch, n_head, past + seq, head_dim]
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BloomForCausalLM, DynamicCache


def input_names(n_layer: int) -> list[str]:
    names = ["input_ids", "attention_mask"]
    for i in range(n_layer):
        names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
    return names


def output_names(n_layer: int) -> list[str]:
    names = ["logits"]
    for i in range(n_layer):
        names += [f"present.{i}.key", f"present.{i}.value"]
    return names


class _FlatKv(torch.nn.Module):
    """Turns flat past tensors into the DynamicCache that transformers expects, and back."""

    def __init__(self, model: BloomForCausalLM) -> None:
        super().__init__()
        self.model = model
        self.n_layer = model.config.n_layer

    def forward(self, input_ids, attention_mask, *past):  # type: ignore[no-untyped-def]
        cache = DynamicCache(config=self.model.config)
        for i in range(self.n_layer):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True
        )
        flat = [out.logits]
        for layer in out.past_key_values.layers:
            flat += [layer.keys, layer.values]
        return tuple(flat)


def export_onnx(model: BloomForCausalLM, path: Path, external_data: bool = False) -> None:
    """Writes model.onnx; weights go to a side file when asked (needed past protobuf's 2 GB)."""
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.n_head
    # Example sizes avoid 0 and 1, or the exporter specialises those dimensions.
    batch, seq, past = 2, 3, 4
    ids = torch.randint(4, cfg.vocab_size, (batch, seq))
    mask = torch.ones((batch, past + seq), dtype=torch.long)
    pasts = [torch.randn(batch, cfg.n_head, past, head_dim) for _ in range(2 * cfg.n_layer)]
    dyn = torch.export.Dim.DYNAMIC
    # *past arrives as one positional tuple, so its shapes form one nested list.
    shapes = ({0: dyn, 1: dyn}, {0: dyn, 1: dyn}, tuple({0: dyn, 2: dyn} for _ in pasts))
    wrapper = _FlatKv(model).eval()
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (ids, mask, *pasts),
            input_names=input_names(cfg.n_layer),
            output_names=output_names(cfg.n_layer),
            dynamic_shapes=shapes,
            opset_version=18,
            dynamo=True,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    _strip_provenance(program.model)
    program.save(str(path), external_data=external_data)


def _strip_provenance(model) -> None:  # type: ignore[no-untyped-def]
    """Drops the exporter's stack traces and names of source files: they hold absolute paths of the
    exporting machine, which would make the graph's bytes depend on where it was built."""
    graphs = [model.graph, *model.functions.values()]
    for graph in graphs:
        graph.metadata_props.clear()
        graph.doc_string = None
        for node in graph.all_nodes() if hasattr(graph, "all_nodes") else graph:
            node.metadata_props.clear()
            node.doc_string = None
    model.metadata_props.clear()
    model.doc_string = None
