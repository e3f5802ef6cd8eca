"""ONNX export of a BLOOM with explicit KV-cache inputs and outputs (the model-directory contract).

One graph serves prefill and decode:
  inputs  input_ids [batch, seq] int64, attention_mask [batch, past + seq] int64,
          past_key_values.{i}.key / .value [batch, n_head, past, head_dim] float32
  outputs logits [batch, seq, vocab] float32, present.{i}.key / .value [batch, n_head, past + seq, head_dim]

With `last_logits` (the default for the project's own graphs) logits are [batch, 1, vocab]: the LM head
runs only on each row's last position, which is the only one the engine reads (prompts are
right-aligned). On a 250880-token vocabulary that is most of a short prompt's prefill FLOPs and the
whole [batch, seq, vocab] output. LayerNorm and the LM head act per position, so the kept logits are
the same computation. `keep_last_logits` rewrites an existing all-positions graph (e.g. an optimum
export) the same way, without PyTorch, and `all_logits` goes back:

    python -m prefixgate_trainer.export --keep-last-logits SRC_DIR DST_DIR
    python -m prefixgate_trainer.export --all-logits SRC_DIR DST_DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import torch
from transformers import BloomForCausalLM, DynamicCache

if TYPE_CHECKING:
    import onnx_ir


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

    def __init__(self, model: BloomForCausalLM, last_logits: bool) -> None:
        super().__init__()
        self.model = model
        self.n_layer = model.config.n_layer
        self.logits_to_keep = 1 if last_logits else 0

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        cache = DynamicCache(config=self.model.config)
        for i in range(self.n_layer):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=self.logits_to_keep,
        )
        flat = [out.logits]
        for layer in out.past_key_values.layers:
            flat += [layer.keys, layer.values]
        return tuple(flat)


def export_onnx(
    model: BloomForCausalLM, path: Path, external_data: bool = False, last_logits: bool = True
) -> None:
    """Writes model.onnx; weights go to a side file when asked (needed past protobuf's 2 GB).
    `last_logits` computes the LM head for the last position only (logits [batch, 1, vocab])."""
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
    wrapper = _FlatKv(model, last_logits).eval()
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
    if program is None:  # only the legacy (dynamo=False) exporter returns nothing
        raise RuntimeError("torch.onnx.export returned no ONNXProgram")
    _strip_provenance(program.model)
    program.save(str(path), external_data=external_data)


def _strip_provenance(model: onnx_ir.Model) -> None:
    """Drops the exporter's stack traces and names of source files: they hold absolute paths of the
    exporting machine, which would make the graph's bytes depend on where it was built."""
    graphs: list[onnx_ir.Graph | onnx_ir.Function] = [model.graph, *model.functions.values()]
    for graph in graphs:
        graph.metadata_props.clear()
        graph.doc_string = None
        for node in graph.all_nodes() if hasattr(graph, "all_nodes") else graph:
            node.metadata_props.clear()
            node.doc_string = None
    model.metadata_props.clear()
    model.doc_string = None


LAST_HIDDEN = "prefixgate.last_hidden"


def _lm_head(graph: onnx.GraphProto) -> tuple[onnx.NodeProto, int, onnx.NodeProto | None]:
    """The node that makes `logits`, the index of its hidden-state input, and that input's producer."""
    producers = {o: n for n in graph.node for o in n.output}
    head = producers.get("logits")
    if head is None or head.op_type not in ("MatMul", "Gemm"):
        raise ValueError(f"'logits' is not produced by a MatMul/Gemm: {head}")
    weights = {i.name for i in graph.initializer}
    index = next(i for i, name in enumerate(head.input) if name not in weights)
    return head, index, producers.get(head.input[index])


def _set_logits_seq_dim(graph: onnx.GraphProto, fixed: bool) -> None:
    out = next(o for o in graph.output if o.name == "logits")
    dim = out.type.tensor_type.shape.dim[1]
    dim.Clear()
    if fixed:
        dim.dim_value = 1
    else:
        dim.dim_param = "sequence_length"


def _save_beside(model: onnx.ModelProto, src: Path, dst: Path) -> None:
    """Saves `model` at dst; external weight files are hard-linked (or copied) under their names."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                target = dst.parent / entry.value
                if not target.exists():
                    try:
                        os.link(src.parent / entry.value, target)
                    except OSError:
                        shutil.copy(src.parent / entry.value, target)
    onnx.save(model, str(dst))


def keep_last_logits(src: Path, dst: Path) -> None:
    """Rewrites an all-positions graph (optimum's layout) so that the LM head sees only position
    seq-1: a Slice on the sequence axis in front of the LM-head MatMul. Weights are not rewritten."""
    model = onnx.load(str(src), load_external_data=False)
    graph = model.graph
    head, index, producer = _lm_head(graph)
    if producer is not None and producer.op_type in ("Slice", "Gather", "GatherND"):
        raise ValueError(f"{src} already keeps only the last position ({producer.op_type} before the LM head)")
    hidden = head.input[index]
    for name, value in (("starts", -1), ("ends", 2**63 - 1), ("axes", 1)):
        graph.initializer.append(onnx.helper.make_tensor(f"{LAST_HIDDEN}.{name}", onnx.TensorProto.INT64, [1], [value]))
    node = onnx.helper.make_node(
        "Slice",
        [hidden, f"{LAST_HIDDEN}.starts", f"{LAST_HIDDEN}.ends", f"{LAST_HIDDEN}.axes"],
        [LAST_HIDDEN],
        name=LAST_HIDDEN,
    )
    head.input[index] = LAST_HIDDEN
    graph.node.insert(list(graph.node).index(head), node)
    _set_logits_seq_dim(graph, fixed=True)
    _save_beside(model, src, dst)


def all_logits(src: Path, dst: Path) -> None:
    """The inverse: drops the Slice in front of the LM head, giving optimum's all-positions layout
    (for comparisons and for checking that the engine still serves such graphs)."""
    model = onnx.load(str(src), load_external_data=False)
    graph = model.graph
    head, index, producer = _lm_head(graph)
    if producer is None or producer.op_type != "Slice":
        raise ValueError(f"{src} has no Slice before the LM head: it already writes every position")
    head.input[index] = producer.input[0]
    if not any(producer.output[0] in n.input for n in graph.node):
        graph.node.remove(producer)
        used = {name for n in graph.node for name in n.input}
        for tensor in [t for t in graph.initializer if t.name in producer.input and t.name not in used]:
            graph.initializer.remove(tensor)
    _set_logits_seq_dim(graph, fixed=False)
    _save_beside(model, src, dst)


def main() -> None:
    parser = argparse.ArgumentParser(description="Rewrite a model directory's graph to the other logits layout")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--keep-last-logits", nargs=2, type=Path, metavar=("SRC_DIR", "DST_DIR"))
    which.add_argument("--all-logits", nargs=2, type=Path, metavar=("SRC_DIR", "DST_DIR"))
    args = parser.parse_args()
    src, dst = args.keep_last_logits or args.all_logits
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith("model.onnx") and not (dst / f.name).exists():
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copy(f, dst / f.name)
    (keep_last_logits if args.keep_last_logits else all_logits)(src / "model.onnx", dst / "model.onnx")
    print(f"rewritten graph in {dst}")


if __name__ == "__main__":
    main()
