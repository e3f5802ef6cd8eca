"""A BLOOM graph whose KV cache does not move: GroupQueryAttention over fixed-capacity slots.

The standard graph (prefixgate_trainer.export) takes `past [B, H, T, d]` and returns
`present = concat(past, new) [B, H, T + S, d]`: every step reads and rewrites the whole KV of every
row, at the width of the widest row. This graph is built by hand from the HF weights instead, with
ONNX Runtime's `com.microsoft.GroupQueryAttention` for attention:

  inputs  input_ids              int64   [B, S]
          seqlens_k              int32   [B]     each row's length after this run, minus 1
          total_sequence_length  int32   []      the longest row's length after this run
          past_key_values.{i}.key / .value float32 [B, H, C, d]   C = the slots' capacity
  outputs logits                 float32 [B, 1, V]   the last position of each row
          present.{i}.key / .value float32 [B, H, C, d]

Each row owns a slot of C columns; its tokens sit at columns [0, len) (prefix first, then prompt,
then generated), the rest is unused. When `present` is bound to the same memory as `past` (ORT's
IO binding in Python, pinned outputs over the same direct buffer in Java), GroupQueryAttention
writes only the new columns, at [seqlens_k + 1 - S, seqlens_k + 1), and reads each row's own
[0, len): a decode step costs the live tokens, not rows x widest row, and nothing is copied.

BLOOM's ALiBi adds slope_h * j for key position j (the softmax is shift-invariant per query, so
the absolute position is what HF computes from the cumulative mask). Every row starts at column 0,
so one bias [1, H, S, total] serves all rows. GroupQueryAttention supports several rows only when
each run brings one token per row (decode) or whole prompts with no past; a prompt appended to a
prefix (or a chunk of a prompt appended to earlier chunks) runs with B = 1.

    python -m prefixgate_trainer.slot_graph MODEL_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

EXTERNAL_DATA_ABOVE = 1 << 30  # weights above this go to model.onnx.data (protobuf's 2 GiB limit)
LAYOUT = "prefixgate-slots-1"
APPEND_LAYOUT = "prefixgate-append-1"
PAGED_LAYOUT = "prefixgate-paged-1"
ATTENTIONS = ("gqa", "append", "paged")
LAYOUTS = {"gqa": LAYOUT, "append": APPEND_LAYOUT, "paged": PAGED_LAYOUT}


def alibi_slopes(n_head: int) -> np.ndarray:
    """HF BloomModel's build_alibi_tensor slopes (n_head need not be a power of two)."""
    closest = 2 ** math.floor(math.log2(n_head))
    base = 2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))
    slopes = [base ** (i + 1) for i in range(closest)]
    if closest != n_head:
        extra = 2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))
        slopes += [extra ** (i + 1) for i in range(0, 2 * (n_head - closest), 2)]
    return np.array(slopes, dtype=np.float32)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "",
           **attrs: Any) -> list[str]:
        self.n += 1
        outs = [f"{op_type.lower()}_{self.n}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{self.n}",
                                           domain=domain, **attrs))
        return outs

    def op1(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        return self.op(op_type, inputs, **attrs)[0]


def _append_masks(b: _Builder, n_head: int) -> tuple[str, str]:
    """The append layout's bias and mask, shared by every layer: (alibi [B, H, 1, C+S], allowed
    [B, 1, S, C+S] bool). Key columns are the slot's C columns (live where the mask is 1) followed
    by the run's S new tokens; query t sees live slot columns and new tokens up to t. ALiBi is HF's
    build_alibi_tensor: slope_h * ((cumsum(mask) - 1) * mask), so unused columns between a row's
    live tokens and the new ones cost nothing in exactness."""
    mask = "attention_mask"
    axis_last = b.init("axis_last", np.array(-1, np.int64))
    cum = b.op1("CumSum", [mask, axis_last])
    pos = b.op1("Mul", [b.op1("Sub", [cum, b.init("one_i64", np.array(1, np.int64))]), mask])  # [B, T]
    posf = b.op1("Cast", [b.op1("Unsqueeze", [pos, b.init("axes_1_2", np.array([1, 2], np.int64))])],
                 to=TensorProto.FLOAT)  # [B, 1, 1, T]
    slopes = b.init("alibi_slopes", alibi_slopes(n_head).reshape(1, n_head, 1, 1))
    alibi = b.op1("Mul", [slopes, posf])  # [B, H, 1, T]
    ids_shape = b.op1("Shape", ["input_ids"])
    seq = b.op1("Gather", [ids_shape, b.init("idx_1", np.array(1, np.int64))], axis=0)  # S
    total = b.op1("Gather", [b.op1("Shape", [mask]), b.init("idx_1b", np.array(1, np.int64))], axis=0)  # C+S
    zero = b.init("zero_i64", np.array(0, np.int64))
    step = b.init("step_i64", np.array(1, np.int64))
    cols = b.op1("Range", [zero, total, step])  # [T]
    # column j is visible to query t iff j <= C + t, with C = T - S
    rows = b.op1("Add", [b.op1("Range", [zero, seq, step]), b.op1("Sub", [total, seq])])  # [S]: C + t
    causal = b.op1("LessOrEqual", [b.op1("Unsqueeze", [cols, b.init("axes_0", np.array([0], np.int64))]),
                                   b.op1("Unsqueeze", [rows, b.init("axes_1", np.array([1], np.int64))])])  # [S, T]
    live = b.op1("Cast", [b.op1("Unsqueeze", [mask, b.init("axes_1_2b", np.array([1, 2], np.int64))])],
                 to=TensorProto.BOOL)  # [B, 1, 1, T]
    return alibi, b.op1("And", [live, causal])


def _append_attention(b: _Builder, i: int, q: str, k: str, v: str, masks: tuple[str, str],
                      n_head: int, head_dim: int, hidden: int) -> str:
    """Attention that reads the slot's past once and returns only the new tokens' K/V (as
    present.{i}.*), with standard ops and ORT's FusedMatMul (no transposed copy of past). Scores
    as HF's BLOOM: alibi + q.k / sqrt(d), masked to float32's minimum, softmax in float32."""
    alibi, allowed = masks
    heads = b.init(f"h.{i}.heads_shape", np.array([0, 0, n_head, head_dim], np.int64))

    def split_heads(t: str, out: str | None = None) -> str:
        r = b.op1("Reshape", [t, heads])  # [B, S, H, d]
        if out is None:
            return b.op1("Transpose", [r], perm=[0, 2, 1, 3])
        b.nodes.append(helper.make_node("Transpose", [r], [out], perm=[0, 2, 1, 3], name=f"Transpose_{out}"))
        return out

    qh = split_heads(q)
    kh = split_heads(k, f"present.{i}.key")  # [B, H, S, d]
    vh = split_heads(v, f"present.{i}.value")
    scale = 1.0 / math.sqrt(head_dim)
    s_past = b.op1("FusedMatMul", [qh, f"past_key_values.{i}.key"], domain="com.microsoft",
                   transB=1, alpha=scale)  # [B, H, S, C]
    s_new = b.op1("FusedMatMul", [qh, kh], domain="com.microsoft", transB=1, alpha=scale)  # [B, H, S, S]
    scores = b.op1("Add", [b.op1("Concat", [s_past, s_new], axis=-1), alibi])
    scores = b.op1("Where", [allowed, scores, b.init(f"h.{i}.fmin", np.array(np.finfo(np.float32).min, np.float32))])
    probs = b.op1("Softmax", [scores], axis=-1)
    c_len = b.op1("Shape", [f"past_key_values.{i}.key"], start=2, end=3)  # [C]
    p_past, p_new = b.op("Split", [probs, b.op1("Concat", [c_len, b.op1("Shape", [kh], start=2, end=3)], axis=0)],
                         n_out=2, axis=-1)
    ctx = b.op1("Add", [b.op1("MatMul", [p_past, f"past_key_values.{i}.value"]), b.op1("MatMul", [p_new, vh])])
    merged = b.op1("Transpose", [ctx], perm=[0, 2, 1, 3])  # [B, S, H, d]
    return b.op1("Reshape", [merged, b.init(f"h.{i}.merge_shape", np.array([0, 0, hidden], np.int64))])


def _paged_masks(b: _Builder, n_head: int) -> tuple[str, str]:
    """The paged layout's bias and mask, shared by every layer, in the heads-first order its
    attention runs in: (alibi [H, B, 1, W+S], allowed [1, B, S, W+S] bool). Key columns are the
    row's W gathered page columns (its tokens in order, live where the mask is 1) followed by the
    run's S new tokens; the rest is _append_masks'."""
    mask = "attention_mask"
    cum = b.op1("CumSum", [mask, b.init("axis_last", np.array(-1, np.int64))])
    pos = b.op1("Mul", [b.op1("Sub", [cum, b.init("one_i64", np.array(1, np.int64))]), mask])  # [B, T]
    axes = b.init("axes_0_2", np.array([0, 2], np.int64))
    posf = b.op1("Cast", [b.op1("Unsqueeze", [pos, axes])], to=TensorProto.FLOAT)  # [1, B, 1, T]
    slopes = b.init("alibi_slopes", alibi_slopes(n_head).reshape(n_head, 1, 1, 1))
    alibi = b.op1("Mul", [slopes, posf])  # [H, B, 1, T]
    seq = b.op1("Gather", [b.op1("Shape", ["input_ids"]), b.init("idx_1", np.array(1, np.int64))], axis=0)
    total = b.op1("Gather", [b.op1("Shape", [mask]), b.init("idx_1b", np.array(1, np.int64))], axis=0)
    zero = b.init("zero_i64", np.array(0, np.int64))
    step = b.init("step_i64", np.array(1, np.int64))
    cols = b.op1("Range", [zero, total, step])  # [T]
    rows = b.op1("Add", [b.op1("Range", [zero, seq, step]), b.op1("Sub", [total, seq])])  # [S]: W + t
    causal = b.op1("LessOrEqual", [b.op1("Unsqueeze", [cols, b.init("axes_0", np.array([0], np.int64))]),
                                   b.op1("Unsqueeze", [rows, b.init("axes_1", np.array([1], np.int64))])])  # [S, T]
    live = b.op1("Cast", [b.op1("Unsqueeze", [mask, axes])], to=TensorProto.BOOL)  # [1, B, 1, T]
    return alibi, b.op1("And", [live, causal])


def _paged_attention(b: _Builder, i: int, q: str, k: str, v: str, masks: tuple[str, str],
                     n_head: int, head_dim: int, hidden: int) -> str:
    """Attention over a page pool: past_key_values.{i}.* are pools [H, N, G, d] (N pages of G
    tokens, any N and G), block_table [B, NP] lists each row's pages in token order, and one Gather
    per kind makes the run's [H, B, NP*G, d] past, a transient that ONNX Runtime's arena reuses
    layer after layer. Attention runs heads-first ([H, B, ...]) so that the gathered past needs no
    transposed copy; only the small query, new K/V and context tensors are transposed. Returns
    only the new tokens' K/V, [B, H, S, d], as present.{i}.*; scores as HF's BLOOM."""
    alibi, allowed = masks
    heads = b.init(f"h.{i}.heads_shape", np.array([0, 0, n_head, head_dim], np.int64))
    flat = b.init(f"h.{i}.pages_shape", np.array([0, 0, -1, head_dim], np.int64))

    def new_kv(t: str, out: str) -> str:
        r = b.op1("Reshape", [t, heads])  # [B, S, H, d]
        b.nodes.append(helper.make_node("Transpose", [r], [out], perm=[0, 2, 1, 3], name=f"Transpose_{out}"))
        return b.op1("Transpose", [r], perm=[2, 0, 1, 3])  # [H, B, S, d]

    qh = b.op1("Transpose", [b.op1("Reshape", [q, heads])], perm=[2, 0, 1, 3])  # [H, B, S, d]
    kh = new_kv(k, f"present.{i}.key")
    vh = new_kv(v, f"present.{i}.value")
    pk = b.op1("Reshape", [b.op1("Gather", [f"past_key_values.{i}.key", "block_table"], axis=1), flat])
    pv = b.op1("Reshape", [b.op1("Gather", [f"past_key_values.{i}.value", "block_table"], axis=1), flat])
    scale = 1.0 / math.sqrt(head_dim)
    s_past = b.op1("FusedMatMul", [qh, pk], domain="com.microsoft", transB=1, alpha=scale)  # [H, B, S, W]
    s_new = b.op1("FusedMatMul", [qh, kh], domain="com.microsoft", transB=1, alpha=scale)  # [H, B, S, S]
    scores = b.op1("Add", [b.op1("Concat", [s_past, s_new], axis=-1), alibi])
    scores = b.op1("Where", [allowed, scores, b.init(f"h.{i}.fmin", np.array(np.finfo(np.float32).min, np.float32))])
    probs = b.op1("Softmax", [scores], axis=-1)
    w_len = b.op1("Shape", [pk], start=2, end=3)  # [W]
    p_past, p_new = b.op("Split", [probs, b.op1("Concat", [w_len, b.op1("Shape", [kh], start=2, end=3)], axis=0)],
                         n_out=2, axis=-1)
    ctx = b.op1("Add", [b.op1("MatMul", [p_past, pv]), b.op1("MatMul", [p_new, vh])])  # [H, B, S, d]
    merged = b.op1("Transpose", [ctx], perm=[1, 2, 0, 3])  # [B, S, H, d]
    return b.op1("Reshape", [merged, b.init(f"h.{i}.merge_shape", np.array([0, 0, hidden], np.int64))])


def build(model_dir: Path, attention: str = "gqa") -> onnx.ModelProto:
    if attention not in ATTENTIONS:
        raise ValueError(f"attention {attention!r} is not one of {ATTENTIONS}")
    cfg = json.loads((model_dir / "config.json").read_text())
    if cfg.get("model_type") != "bloom":
        raise ValueError(f"model_type {cfg.get('model_type')!r} is not bloom")
    if cfg.get("apply_residual_connection_post_layernorm"):
        raise ValueError("apply_residual_connection_post_layernorm = true is not supported")
    n_layer, n_head, hidden = cfg["n_layer"], cfg["n_head"], cfg["hidden_size"]
    head_dim = hidden // n_head
    vocab = cfg["vocab_size"]
    eps = float(cfg.get("layer_norm_epsilon", 1e-5))
    w = load_file(str(model_dir / "model.safetensors"))
    pre = "transformer." if "transformer.word_embeddings.weight" in w else ""

    def t(name: str) -> np.ndarray:
        return w[pre + name].astype(np.float32)

    b = _Builder()
    emb = b.init("word_embeddings", t("word_embeddings.weight"))  # [V, hidden], tied LM head
    x = b.op1("Gather", [emb, "input_ids"], axis=0)  # [B, S, hidden]

    def layer_norm(v: str, prefix: str) -> str:
        g = b.init(prefix + ".weight", t(prefix + ".weight"))
        bb = b.init(prefix + ".bias", t(prefix + ".bias"))
        return b.op1("LayerNormalization", [v, g, bb], axis=-1, epsilon=eps)

    def linear(v: str, prefix: str, weight: np.ndarray | None = None, bias: np.ndarray | None = None) -> str:
        wt = (t(prefix + ".weight") if weight is None else weight).T  # [in, out]
        bv = t(prefix + ".bias") if bias is None else bias
        y = b.op1("MatMul", [v, b.init(prefix + ".weight_t", wt)])
        return b.op1("Add", [y, b.init(prefix + ".bias", bv)])

    x = layer_norm(x, "word_embeddings_layernorm")

    if attention == "append":
        attend = _append_masks(b, n_head)
    elif attention == "paged":
        attend = _paged_masks(b, n_head)
    else:
        # ALiBi: bias[0, h, s, j] = slope_h * j for j < total_sequence_length (GQA adds it after the
        # 1/sqrt(d) scaling, as HF's baddbmm(alibi, q, k, beta=1, alpha=1/sqrt(d)) does).
        slopes = b.init("alibi_slopes", alibi_slopes(n_head).reshape(1, n_head, 1, 1))
        total64 = b.op1("Cast", ["total_sequence_length"], to=TensorProto.INT64)
        zero = b.init("zero_i64", np.array(0, np.int64))
        one = b.init("one_i64", np.array(1, np.int64))
        positions = b.op1("Cast", [b.op1("Range", [zero, total64, one])], to=TensorProto.FLOAT)  # [T]
        bias_1h1t = b.op1("Mul", [slopes, positions])  # [1, H, 1, T]
        ids_shape = b.op1("Shape", ["input_ids"])
        seq = b.op1("Slice", [ids_shape, b.init("i1", np.array([1], np.int64)),
                              b.init("i2", np.array([2], np.int64))])  # [S]
        bias_shape = b.op1("Concat", [b.init("one_h", np.array([1, n_head], np.int64)), seq,
                                      b.op1("Reshape", [total64, b.init("shape_1", np.array([1], np.int64))])],
                           axis=0)
        alibi = b.op1("Expand", [bias_1h1t, bias_shape])  # [1, H, S, T]

    for i in range(n_layer):
        p = f"h.{i}"
        ln = layer_norm(x, p + ".input_layernorm")
        # HF's fused query_key_value rows are (head, q|k|v, head_dim); reorder them to
        # (q|k|v, head, head_dim) so one Split gives GQA's [B, S, H*d] query, key and value.
        w4 = t(p + ".self_attention.query_key_value.weight").reshape(n_head, 3, head_dim, hidden)
        b3 = t(p + ".self_attention.query_key_value.bias").reshape(n_head, 3, head_dim)
        wqkv = w4.transpose(1, 0, 2, 3).reshape(3 * hidden, hidden)
        bqkv = b3.transpose(1, 0, 2).reshape(3 * hidden)
        qkv = linear(ln, p + ".self_attention.query_key_value", wqkv, bqkv)
        q, k, v = b.op("Split", [qkv, b.init(p + ".split", np.array([hidden] * 3, np.int64))],
                       n_out=3, axis=-1)
        if attention == "append":
            attn = _append_attention(b, i, q, k, v, attend, n_head, head_dim, hidden)
        elif attention == "paged":
            attn = _paged_attention(b, i, q, k, v, attend, n_head, head_dim, hidden)
        else:
            # The operator's own outputs are the graph's present tensors: only then can the caller's
            # shared buffer reach it (an Identity in between would copy the whole KV every step).
            attn = f"attn_{i}"
            b.nodes.append(helper.make_node(
                "GroupQueryAttention",
                [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", "seqlens_k",
                 "total_sequence_length", "", "", "", alibi],
                [attn, f"present.{i}.key", f"present.{i}.value"], name=f"GroupQueryAttention_{i}",
                domain="com.microsoft", num_heads=n_head, kv_num_heads=n_head))
        x = b.op1("Add", [x, linear(attn, p + ".self_attention.dense")])
        ln2 = layer_norm(x, p + ".post_attention_layernorm")
        hmid = b.op1("Gelu", [linear(ln2, p + ".mlp.dense_h_to_4h")], approximate="tanh")
        x = b.op1("Add", [x, linear(hmid, p + ".mlp.dense_4h_to_h")])

    # Last position only: a slot prompt run has B = 1 and no padding, a decode run has S = 1, and
    # a paged prompt run right-aligns its rows' prompts.
    last = b.op1("Slice", [x, b.init("m1", np.array([-1], np.int64)),
                           b.init("big", np.array([np.iinfo(np.int64).max], np.int64)),
                           b.init("ax1", np.array([1], np.int64))])  # [B, 1, hidden]
    last = layer_norm(last, "ln_f")
    flat = b.op1("Reshape", [last, b.init("flat_shape", np.array([-1, hidden], np.int64))])
    if attention in ("append", "paged"):
        # A transposed copy for MatMul, as optimum's graphs have it: ORT prepacks a constant MatMul
        # weight once, where Gemm's transB re-reads [V, hidden] the slow way every run.
        lm_head = b.init("lm_head_t", t("word_embeddings.weight").T)  # [hidden, V]
        scores = b.op1("MatMul", [flat, lm_head])
    else:
        scores = b.op1("Gemm", [flat, emb], transB=1)  # [B, V], tied to the embeddings
    out_shape = b.init("logits_shape", np.array([-1, 1, vocab], np.int64))
    b.nodes.append(helper.make_node("Reshape", [scores, out_shape], ["logits"]))

    kv = [n_head, "N", "G", head_dim] if attention == "paged" else ["B", n_head, "C", head_dim]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "S"])]
    if attention == "append":
        inputs.append(helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "C_plus_S"]))
    elif attention == "paged":
        inputs += [helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "W_plus_S"]),
                   helper.make_tensor_value_info("block_table", TensorProto.INT64, ["B", "NP"])]
    else:
        inputs += [helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["B"]),
                   helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, [])]
    new_kv = ["B", n_head, "S", head_dim]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", 1, vocab])]
    for i in range(n_layer):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", TensorProto.FLOAT, kv))
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}", TensorProto.FLOAT,
                                                         kv if attention == "gqa" else new_kv))
    graph = helper.make_graph(b.nodes, "bloom_slots", inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="prefixgate_trainer.slot_graph")
    model.ir_version = 10
    model.metadata_props.append(onnx.StringStringEntryProto(
        key="prefixgate.kv_layout", value=LAYOUTS[attention]))
    return model


def export(model_dir: Path, out_dir: Path, attention: str = "gqa") -> Path:
    """Writes the slot graph and copies the model directory's other files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        # The serving directory needs the graph, config and tokenizer, not the HF weights.
        if f.is_file() and not f.name.startswith("model.onnx") and f.suffix != ".safetensors":
            dst = out_dir / f.name
            dst.unlink(missing_ok=True)
            try:
                os.link(f, dst)  # the weights are gigabytes: share them where the file system can
            except OSError:
                shutil.copy2(f, dst)
    model = build(model_dir, attention)
    for stale in ("model.onnx", "model.onnx.data"):
        (out_dir / stale).unlink(missing_ok=True)
    size = sum(i.ByteSize() for i in model.graph.initializer)
    if size > EXTERNAL_DATA_ABOVE:
        onnx.save_model(model, str(out_dir / "model.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=1024)
    else:
        onnx.save_model(model, str(out_dir / "model.onnx"))
    return out_dir / "model.onnx"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path, help="a model directory with model.safetensors and config.json")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--attention", choices=ATTENTIONS, default="gqa",
                    help="gqa: GroupQueryAttention writes in place; append: standard ops read past once "
                         "and return only the new tokens' K/V; paged: the same over a page pool and a "
                         "block table (KV held follows the live tokens)")
    a = ap.parse_args()
    print(export(a.model_dir, a.out_dir, a.attention))


if __name__ == "__main__":
    main()
