"""The slot-layout graphs (prefixgate_trainer.slot_graph), built from the committed demo weights,
reproduce the PEFT goldens alone and in a mixed batch: GroupQueryAttention writing KV in place
(tiny-bloom-slots), standard ops that read the slots once and return only the new columns' K/V
(tiny-bloom-append), and the same over a page pool read through a block table (tiny-bloom-paged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from prefixgate_trainer import slot_graph
from prefixgate_trainer.slot_loop import PagedBloom, SlotBloom

from . import consistency as c
from .conftest import FIXTURES

GRAPHS = {"gqa": FIXTURES / "tiny-bloom-slots", "append": FIXTURES / "tiny-bloom-append",
          "paged": FIXTURES / "tiny-bloom-paged"}
ALL = pytest.mark.parametrize("attention", sorted(GRAPHS))
ATTENTIONS = pytest.mark.parametrize("attention", ["append", "gqa"])  # the SlotBloom loop


@ALL
def test_committed_slot_graph_is_what_the_builder_writes(tmp_path: Path, attention: str) -> None:
    # No float kernel runs to build it (the weights' bytes are rearranged), so bytes are equal on
    # any CPU.
    slot_graph.export(FIXTURES / "tiny-bloom", tmp_path / "slots", attention)
    assert (tmp_path / "slots" / "model.onnx").read_bytes() == (GRAPHS[attention] / "model.onnx").read_bytes()
    assert not list((tmp_path / "slots").glob("*.safetensors")), "serving dirs carry no HF weights"


@ALL
def test_slot_graph_contract(attention: str) -> None:
    m = onnx.load(str(GRAPHS[attention] / "model.onnx"))
    ins = {i.name: i.type.tensor_type for i in m.graph.input}
    outs = {o.name: o.type.tensor_type for o in m.graph.output}
    if attention == "gqa":
        assert ins["seqlens_k"].elem_type == onnx.TensorProto.INT32
        assert len(ins["total_sequence_length"].shape.dim) == 0
        assert "attention_mask" not in ins
    else:
        assert ins["attention_mask"].elem_type == onnx.TensorProto.INT64
        assert ("block_table" in ins) == (attention == "paged")
        assert "seqlens_k" not in ins
        assert not any(n.op_type in ("Concat",) and any(i.startswith("past_key_values") for i in n.input)
                       for n in m.graph.node), "past must be read, never concatenated"
    assert [d.dim_value for d in outs["logits"].shape.dim][1:] == [1, 4096]
    for i in range(3):
        for kind in ("key", "value"):
            past = [d.dim_param or d.dim_value for d in ins[f"past_key_values.{i}.{kind}"].shape.dim]
            present = [d.dim_param or d.dim_value for d in outs[f"present.{i}.{kind}"].shape.dim]
            assert past == ([4, "N", "G", 32] if attention == "paged" else ["B", 4, "C", 32])
            assert present == (past if attention == "gqa" else ["B", 4, "S", 32])
    layout = slot_graph.LAYOUTS[attention]
    assert {p.key: p.value for p in m.metadata_props}["prefixgate.kv_layout"] == layout


@ATTENTIONS
def test_every_golden_alone_and_its_first_logits(attention: str) -> None:
    fx = c.Fixtures(FIXTURES)
    m = SlotBloom(GRAPHS[attention], rows=1, capacity=128, threads=1)
    for cid, case in fx.cases.items():
        prefix = fx.prefix(case["adapter"])
        logits = m.prefill(0, prefix, case["prompt_ids"])
        np.testing.assert_allclose(logits, np.array(fx.logits[cid]), atol=c.LOGIT_TOLERANCE, err_msg=cid)
        assert m.greedy([(prefix, case["prompt_ids"])], len(case["new_ids"]))[0] == case["new_ids"], cid


@ATTENTIONS
def test_mixed_batch_with_prompts_in_chunks(attention: str) -> None:
    fx = c.Fixtures(FIXTURES)
    rows = [fx.cases[r["case"]] for r in fx.golden["batch"]]
    batch = [(fx.prefix(r["adapter"]), r["prompt_ids"]) for r in rows]
    m = SlotBloom(GRAPHS[attention], rows=len(batch), capacity=128, threads=1)
    outs = m.greedy(batch, len(rows[0]["new_ids"]), chunk=5)
    for row, out in zip(rows, outs, strict=True):
        assert out == row["new_ids"], row["id"]


@pytest.mark.parametrize("page_tokens", [16, 5, 1])
def test_paged_goldens_alone(page_tokens: int) -> None:
    fx = c.Fixtures(FIXTURES)
    for cid, case in fx.cases.items():
        m = PagedBloom(GRAPHS["paged"], pages=64, page_tokens=page_tokens, threads=1)
        prefix = fx.prefix(case["adapter"])
        logits = m.prefill([(prefix, case["prompt_ids"])])[0]
        np.testing.assert_allclose(logits, np.array(fx.logits[cid]), atol=c.LOGIT_TOLERANCE, err_msg=cid)
        m = PagedBloom(GRAPHS["paged"], pages=64, page_tokens=page_tokens, threads=1)
        assert m.greedy([(prefix, case["prompt_ids"])], len(case["new_ids"]))[0] == case["new_ids"], cid


@pytest.mark.parametrize("chunk", [0, 5])
def test_paged_mixed_batch_prefilled_together(chunk: int) -> None:
    # Rows with different prefix and prompt lengths (a P=0 row among them) share every prefill
    # run, right-aligned, and their pages interleave in the pool.
    fx = c.Fixtures(FIXTURES)
    rows = [fx.cases[r["case"]] for r in fx.golden["batch"]]
    batch = [(fx.prefix(r["adapter"]), r["prompt_ids"]) for r in rows]
    m = PagedBloom(GRAPHS["paged"], pages=256, page_tokens=7, threads=1)
    outs = m.greedy(batch, len(rows[0]["new_ids"]), chunk=chunk)
    for row, out in zip(rows, outs, strict=True):
        assert out == row["new_ids"], row["id"]
