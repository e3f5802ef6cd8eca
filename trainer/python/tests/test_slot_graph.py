"""The slot-layout graphs (prefixgate_trainer.slot_graph), built from the committed demo weights,
reproduce the PEFT goldens alone and in a mixed batch: GroupQueryAttention writing KV in place
(tiny-bloom-slots), and standard ops that read the slots once and return only the new columns'
K/V (tiny-bloom-append)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from prefixgate_trainer import slot_graph
from prefixgate_trainer.slot_loop import SlotBloom

from . import consistency as c
from .conftest import FIXTURES

GRAPHS = {"gqa": FIXTURES / "tiny-bloom-slots", "append": FIXTURES / "tiny-bloom-append"}
ATTENTIONS = pytest.mark.parametrize("attention", sorted(GRAPHS))


@ATTENTIONS
def test_committed_slot_graph_is_what_the_builder_writes(tmp_path: Path, attention: str) -> None:
    # No float kernel runs to build it (the weights' bytes are rearranged), so bytes are equal on
    # any CPU.
    slot_graph.export(FIXTURES / "tiny-bloom", tmp_path / "slots", attention)
    assert (tmp_path / "slots" / "model.onnx").read_bytes() == (GRAPHS[attention] / "model.onnx").read_bytes()
    assert not list((tmp_path / "slots").glob("*.safetensors")), "serving dirs carry no HF weights"


@ATTENTIONS
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
        assert "seqlens_k" not in ins
        assert not any(n.op_type in ("Concat",) and any(i.startswith("past_key_values") for i in n.input)
                       for n in m.graph.node), "past must be read, never concatenated"
    assert [d.dim_value for d in outs["logits"].shape.dim][1:] == [1, 4096]
    for i in range(3):
        for kind in ("key", "value"):
            past = [d.dim_param or d.dim_value for d in ins[f"past_key_values.{i}.{kind}"].shape.dim]
            present = [d.dim_param or d.dim_value for d in outs[f"present.{i}.{kind}"].shape.dim]
            assert past == ["B", 4, "C", 32]
            assert present == (past if attention == "gqa" else ["B", 4, "S", 32])
    layout = slot_graph.LAYOUT if attention == "gqa" else slot_graph.APPEND_LAYOUT
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
