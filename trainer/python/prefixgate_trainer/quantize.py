"""Weight-only block-wise quantized copies of a model directory (int8 / int4, ONNX Runtime MatMulNBits).

    python -m prefixgate_trainer.quantize --model SRC_DIR --bits 8|4 [--block-size 128] --out DST_DIR

Every MatMul whose weight is a constant becomes a `com.microsoft.MatMulNBits` node: the attention
QKV / output projections, both MLP projections and the LM head. BLOOM ties the LM head to the word
embeddings, so the exported graph computes logits as MatMul(hidden, Transpose(word_embeddings)); the
Transpose is materialised as its own [hidden, vocab] initializer first so that the quantizer sees a
constant weight (≈46% of the 560m model's bytes). The embedding Gather keeps the float32 table: it
reads one row per token, so it costs memory but no bandwidth.

Weights are quantized per column in blocks of `block_size` rows along K with a float32 scale per
block (and a uint8 zero point unless `--symmetric`). `--accuracy-level 4` (the default) lets ORT's
CPU kernels quantize the activations to int8 per block and use integer dot products (VNNI / AMX);
0 keeps float32 arithmetic on dequantized weights; ORT 1.30's CPU kernel then dequantizes a whole
8-bit weight on every call, about 50x slower than float32 on the 560m model, so keep 4 for int8.
Block size 128 (the default) was faster than 32 on the 560m model and no less faithful on the tiny
one (docs/quantization.md). Inputs and outputs (input_ids, attention_mask,
past_key_values.*, logits, present.*) keep their names, float32 / int64 types and shapes, so the
prefix KV and the engine are unchanged.

The destination holds model.onnx (+ model.onnx.data when the source used external data), the
source's config.json, tokenizer files and chat template (so the base-model fingerprint, and hence
adapter compatibility, is the source's), and `prefixgate-model.json`, which records what it is:

    {"format": "prefixgate-model-v1",
     "quantization": {"weights": "int4", "method": "MatMulNBits", "bits": 4, "block_size": 32, ...,
                      "source": {"onnx_sha256": ..., "fingerprint": ...}}}

A directory without prefixgate-model.json holds float32 weights. The PyTorch weights
(model.safetensors) are not copied: they are the source's float32 weights, not what the graph runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
from onnx import numpy_helper

from .fingerprint import model_fingerprint

MODEL_JSON = "prefixgate-model.json"
LM_HEAD_T = "prefixgate.lm_head.weight_t"
# Files of a model directory that describe the weights rather than the graph's contract.
_NOT_COPIED = ("model.onnx", "model.onnx.data", MODEL_JSON)


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def _load_external_data(model: onnx.ModelProto, model_dir: Path) -> None:
    """Reads external initializers into the model. onnx.load would refuse a data file with several
    hard links, which is how export.py shares one between the logits layouts; the files are ours."""
    handles: dict[str, Any] = {}
    try:
        for t in model.graph.initializer:
            if t.data_location != onnx.TensorProto.EXTERNAL:
                continue
            info = {e.key: e.value for e in t.external_data}
            name = info["location"]
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"external data location {name!r} leaves the model directory")
            f = handles.get(name) or handles.setdefault(name, (model_dir / name).open("rb"))
            f.seek(int(info.get("offset", 0)))
            t.raw_data = f.read(int(info["length"])) if "length" in info else f.read()
            t.data_location = onnx.TensorProto.DEFAULT
            del t.external_data[:]
    finally:
        for f in handles.values():
            f.close()


def _file_sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
    return h.hexdigest()


def source_files(model_dir: Path) -> list[Path]:
    """model.onnx and, when present, its external data file."""
    files = [model_dir / "model.onnx"]
    data = model_dir / "model.onnx.data"
    if data.exists():
        files.append(data)
    return files


def untie_lm_head(model: onnx.ModelProto) -> str:
    """Makes the logits MatMul's weight a plain [hidden, vocab] initializer (returns its name).

    Handles MatMul(h, Transpose(W)) (the dynamo export of tied embeddings), MatMul(h, W_init) (already
    plain) and Gemm(h, W, transB=1) without bias, as some exporters write it."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {t.name: t for t in graph.initializer}
    head = producers.get("logits")
    if head is None:
        raise ValueError("the graph has no 'logits' output producer")
    if head.op_type == "Gemm":
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in head.attribute}
        if len(head.input) > 2 and head.input[2]:
            raise ValueError("a Gemm LM head with a bias is not supported")
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
            raise ValueError(f"unsupported Gemm LM head attributes {attrs}")
        weight = head.input[1]
        if weight not in inits:
            raise ValueError("the Gemm LM head's weight is not a constant")
        w = numpy_helper.to_array(inits[weight])
        if attrs.get("transB", 0):
            w = w.T
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), LM_HEAD_T))
        index = list(graph.node).index(head)
        graph.node.remove(head)
        graph.node.insert(index, onnx.helper.make_node("MatMul", [head.input[0], LM_HEAD_T], ["logits"],
                                                       name=head.name or "lm_head"))
        return LM_HEAD_T
    if head.op_type != "MatMul":
        raise ValueError(f"'logits' is produced by {head.op_type}, not a MatMul/Gemm")
    weight = head.input[1]
    if weight in inits:
        return str(weight)
    transpose = producers.get(weight)
    if transpose is None or transpose.op_type != "Transpose" or transpose.input[0] not in inits:
        raise ValueError(f"the LM head's weight {weight!r} is neither a constant nor Transpose(constant)")
    perm = [list(a.ints) for a in transpose.attribute if a.name == "perm"]
    if perm and perm[0] != [1, 0]:
        raise ValueError(f"the LM head's Transpose has perm {perm[0]}")
    w = numpy_helper.to_array(inits[transpose.input[0]])
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T), LM_HEAD_T))
    head.input[1] = LM_HEAD_T
    if not any(weight in n.input for n in graph.node) and weight not in {o.name for o in graph.output}:
        graph.node.remove(transpose)
    return LM_HEAD_T


def _dims(model: onnx.ModelProto, name: str) -> list[int]:
    return next(list(t.dims) for t in model.graph.initializer if t.name == name)


def _io_signature(model: onnx.ModelProto) -> list[tuple[str, str, int, list[str | int]]]:
    sig: list[tuple[str, str, int, list[str | int]]] = []
    for kind, values in (("in", model.graph.input), ("out", model.graph.output)):
        for v in values:
            t = v.type.tensor_type
            dims: list[str | int] = [d.dim_param or d.dim_value for d in t.shape.dim]
            sig.append((kind, v.name, t.elem_type, dims))
    return sig


def quantize_graph(
    model: onnx.ModelProto, bits: int, block_size: int, symmetric: bool, accuracy_level: int,
    embeddings: str = "fp32",
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Returns the quantized model and counts of what was quantized. Raises if any constant-weight
    MatMul (the LM head included) is left in float32, or if the graph's inputs/outputs changed.
    `embeddings="int4"` also turns the embedding Gather into GatherBlockQuantized (4-bit, blocks
    along the hidden axis; ORT 1.30 quantizes Gather to 4 bits only), which saves memory, not
    bandwidth: it moves the graph to opset 21."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    before = _io_signature(model)
    head_weight = untie_lm_head(model)
    inits = {t.name for t in model.graph.initializer}
    weights = [n.input[1] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=block_size,
        is_symmetric=symmetric,
        accuracy_level=accuracy_level,
        op_types_to_quantize=("MatMul",),
    )
    quantizer.process()  # type: ignore[no-untyped-call]  # onnxruntime.quantization has no annotations here
    out: onnx.ModelProto = quantizer.model.model
    if embeddings == "int4":
        gathers = MatMulNBitsQuantizer(out, bits=4, block_size=block_size, is_symmetric=symmetric,
                                       op_types_to_quantize=("Gather",), quant_axes=(("Gather", 1),))
        gathers.process()  # type: ignore[no-untyped-call]
        out = gathers.model.model
        inits = {t.name for t in out.graph.initializer}
        if any(n.op_type == "Gather" and n.input[0] in inits and len(_dims(out, n.input[0])) == 2
               for n in out.graph.node):
            raise RuntimeError("the embedding Gather is still float32")
    elif embeddings != "fp32":
        raise ValueError(f"embeddings must be fp32 or int4, not {embeddings!r}")
    inits = {t.name for t in out.graph.initializer}
    left = [n.name or n.output[0] for n in out.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in inits]
    if left:
        raise RuntimeError(f"MatMuls left in float32 after quantization: {left}")
    nbits = [n for n in out.graph.node if n.op_type == "MatMulNBits"]
    head = next(n for n in out.graph.node if "logits" in n.output)
    if head.op_type != "MatMulNBits":
        raise RuntimeError(f"the LM head is {head.op_type} after quantization, not MatMulNBits")
    if _io_signature(out) != before:
        raise RuntimeError("quantization changed the graph's inputs or outputs")
    params = 0
    for n in nbits:
        attrs = {a.name: a.i for a in n.attribute}
        params += attrs["K"] * attrs["N"]
    return out, {"matmuls": len(weights), "lm_head": head_weight, "quantized_params": params}


def weight_bytes(model_dir: Path) -> dict[str, int]:
    """Bytes of the weights a decode step reads once per step: every MatMul / MatMulNBits weight
    (packed data, scales, zero points). The embedding table (one row per token) is not counted."""
    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    sizes: dict[str, int] = {}
    for t in model.graph.initializer:
        n = int(np.prod(t.dims)) if t.dims else 1
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        sizes[t.name] = n * itemsize
    producers = {o: n for n in model.graph.node for o in n.output}
    read = 0
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            read += sum(sizes.get(i, 0) for i in node.input[1:])
        elif node.op_type in ("MatMul", "Gemm"):
            w = node.input[1]
            if w in sizes:
                read += sizes[w]
            elif w in producers and producers[w].op_type == "Transpose" and producers[w].input[0] in sizes:
                read += sizes[producers[w].input[0]]
    return {"decode_weight_bytes": read, "initializer_bytes": sum(sizes.values())}


def describe(model_dir: Path) -> dict[str, Any]:
    """What a model directory says about its weights: prefixgate-model.json's quantization object,
    or {"weights": "fp32"} when there is none."""
    path = model_dir / MODEL_JSON
    if not path.exists():
        return {"weights": "fp32"}
    q: dict[str, Any] = json.loads(path.read_text())["quantization"]
    return q


def quantize_dir(
    src: Path, dst: Path, bits: int, block_size: int, symmetric: bool = False, accuracy_level: int = 4,
    embeddings: str = "fp32",
) -> dict[str, Any]:
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, not {bits}")
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block size must be a power of two >= 16, not {block_size}")
    if (src / MODEL_JSON).exists():
        raise ValueError(f"{src} is already quantized ({describe(src)}); quantize the float32 directory")
    if dst.resolve() == src.resolve():
        raise ValueError("the destination must differ from the source")
    model = onnx.load(str(src / "model.onnx"), load_external_data=False)
    external = _has_external_data(model)
    _load_external_data(model, src)
    qmodel, counts = quantize_graph(model, bits, block_size, symmetric, accuracy_level, embeddings)
    del model
    dst.mkdir(parents=True, exist_ok=True)
    for stale in (dst / "model.onnx", dst / "model.onnx.data"):
        stale.unlink(missing_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in _NOT_COPIED and f.suffix != ".safetensors":
            target = dst / f.name
            target.unlink(missing_ok=True)
            shutil.copy(f, target)
    if external:
        onnx.save(qmodel, str(dst / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                  location="model.onnx.data", size_threshold=1024)
    else:
        onnx.save(qmodel, str(dst / "model.onnx"))
    quantization: dict[str, Any] = {
        "weights": f"int{bits}",
        "method": "MatMulNBits",
        "bits": bits,
        "block_size": block_size,
        "symmetric": symmetric,
        "accuracy_level": accuracy_level,
        "quantized_matmuls": counts["matmuls"],
        "quantized_params": counts["quantized_params"],
        "lm_head": "quantized",
        "embeddings": embeddings,
        "tool": f"onnxruntime.quantization.matmul_nbits_quantizer (onnxruntime {onnxruntime.__version__})",
        "source": {
            "onnx_sha256": _file_sha256(source_files(src)),
            "fingerprint": model_fingerprint(src),
        },
    }
    doc = {"format": "prefixgate-model-v1", "quantization": quantization}
    (dst / MODEL_JSON).write_text(json.dumps(doc, indent=1) + "\n")
    return quantization


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="float32 model directory")
    parser.add_argument("--bits", type=int, choices=(4, 8), required=True)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--symmetric", action="store_true", help="no zero points (default: asymmetric)")
    parser.add_argument("--accuracy-level", type=int, default=4, choices=(0, 1, 2, 3, 4),
                        help="MatMulNBits accuracy_level: 4 = int8 activations on CPU, 0 = float32 compute")
    parser.add_argument("--embeddings", choices=("fp32", "int4"), default="fp32",
                        help="int4: also the embedding table (GatherBlockQuantized); less memory, same speed")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    q = quantize_dir(args.model, args.out, args.bits, args.block_size, args.symmetric, args.accuracy_level,
                     args.embeddings)
    wb = weight_bytes(args.out)
    print(json.dumps({"out": str(args.out), **q, **wb}))
    os.sync()


if __name__ == "__main__":
    main()
