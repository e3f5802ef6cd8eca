#!/usr/bin/env python3
"""Decode-step cost of the standard graph (present = concat(past, new)) against the slot graphs
(GroupQueryAttention writing in place; append; paged), one after the other in one process, on the
same weights.

    trainer/python/.venv/bin/python bench/kv_slots.py \\
        --standard bench/models/bloom-560m-random/model --slots bench/models/bloom-560m-slots \\
        --append bench/models/bloom-560m-append --paged bench/models/bloom-560m-paged

The slot graph is made with `python -m prefixgate_trainer.slot_graph MODEL_DIR OUT_DIR`. KV values
are random (a step's cost does not depend on them; exactness is tested on the fixtures, see
trainer/python/tests/test_slot_graph.py). Each scenario lists the rows' context lengths; the
standard graph runs them as one batch at the widest row's width, as the engine does today. It
prints the median step time of --steps steps (after one warm-up), interleaving the two graphs
--reps times, and the ratio.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

SCENARIOS = {  # rows x context tokens
    "1x40": [40],
    "8x40": [40] * 8,
    "8x1000": [1000] * 8,
    "4x40+4x1000": [40] * 4 + [1000] * 4,
    "7x40+1x1900": [40] * 7 + [1900],
    "16x1000": [1000] * 16,
}


def session(model_dir: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])


def standard_steps(sess: ort.InferenceSession, cfg: dict[str, int], lens: list[int], steps: int) -> list[float]:
    n_layer, n_head = cfg["n_layer"], cfg["n_head"]
    d = cfg["hidden_size"] // n_head
    b, t = len(lens), max(lens)
    rng = np.random.default_rng(0)
    past = [rng.standard_normal((b, n_head, t, d), dtype=np.float32) * 0.1 for _ in range(2 * n_layer)]
    mask = np.zeros((b, t + 1), np.int64)
    for r, n in enumerate(lens):
        mask[r, t - n:] = 1
    times = []
    for _ in range(steps + 1):
        feeds: dict[str, np.ndarray] = {"input_ids": np.full((b, 1), 5, np.int64), "attention_mask": mask}
        for i in range(n_layer):
            feeds[f"past_key_values.{i}.key"] = past[2 * i]
            feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
        t0 = time.perf_counter()
        out = sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
        past = list(out[1:])
        mask = np.concatenate([mask, np.ones((b, 1), np.int64)], axis=1)
    return times[1:]


def slot_steps(sess: ort.InferenceSession, cfg: dict[str, int], lens: list[int], steps: int) -> list[float]:
    n_layer, n_head = cfg["n_layer"], cfg["n_head"]
    d = cfg["hidden_size"] // n_head
    b, cap = len(lens), max(lens) + steps + 2
    rng = np.random.default_rng(0)
    arena = [rng.standard_normal((b, n_head, cap, d), dtype=np.float32) * 0.1 for _ in range(2 * n_layer)]
    views = [ort.OrtValue.ortvalue_from_numpy(a) for a in arena]
    cur = list(lens)
    times = []
    for _ in range(steps + 1):
        cur = [n + 1 for n in cur]
        io = sess.io_binding()
        io.bind_cpu_input("input_ids", np.full((b, 1), 5, np.int64))
        io.bind_cpu_input("seqlens_k", np.array([n - 1 for n in cur], np.int32))
        io.bind_cpu_input("total_sequence_length", np.array(max(cur), np.int32))
        for i in range(n_layer):
            for j, kind in enumerate(("key", "value")):
                io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", views[2 * i + j])
                io.bind_ortvalue_output(f"present.{i}.{kind}", views[2 * i + j])
        io.bind_output("logits")
        t0 = time.perf_counter()
        sess.run_with_iobinding(io)
        io.copy_outputs_to_cpu()
        times.append(time.perf_counter() - t0)
    return times[1:]


def append_steps(sess: ort.InferenceSession, cfg: dict[str, int], lens: list[int], steps: int) -> list[float]:
    """The append graph: past is the slot arena [B, H, C, d] (read once), the run returns only the
    new column's K/V, and the caller writes it into each row's slot (timed: the engine does it too)."""
    n_layer, n_head = cfg["n_layer"], cfg["n_head"]
    d = cfg["hidden_size"] // n_head
    b, cap = len(lens), max(lens) + steps + 2
    rng = np.random.default_rng(0)
    arena = [rng.standard_normal((b, n_head, cap, d), dtype=np.float32) * 0.1 for _ in range(2 * n_layer)]
    cur = list(lens)
    times = []
    for _ in range(steps + 1):
        mask = np.zeros((b, cap + 1), np.int64)
        for r, n in enumerate(cur):
            mask[r, :n] = 1
        mask[:, cap] = 1
        feeds: dict[str, np.ndarray] = {"input_ids": np.full((b, 1), 5, np.int64), "attention_mask": mask}
        for i in range(n_layer):
            feeds[f"past_key_values.{i}.key"] = arena[2 * i]
            feeds[f"past_key_values.{i}.value"] = arena[2 * i + 1]
        t0 = time.perf_counter()
        out = sess.run(None, feeds)
        for j in range(2 * n_layer):
            for r, n in enumerate(cur):
                arena[j][r, :, n] = out[1 + j][r, :, 0]
        times.append(time.perf_counter() - t0)
        cur = [n + 1 for n in cur]
    return times[1:]


def paged_steps(sess: ort.InferenceSession, cfg: dict[str, int], lens: list[int], steps: int,
                page: int = 16) -> list[float]:
    """The paged graph: one pool [H, N, G, d] per layer and kind holding exactly the rows' pages, a
    block table per step, the run returns the new column's K/V and the caller writes it into each
    row's page (timed, as in append_steps)."""
    n_layer, n_head = cfg["n_layer"], cfg["n_head"]
    d = cfg["hidden_size"] // n_head
    b = len(lens)
    need = [-(-(n + steps + 2) // page) for n in lens]
    rng = np.random.default_rng(0)
    pool = [rng.standard_normal((n_head, sum(need), page, d), dtype=np.float32) * 0.1 for _ in range(2 * n_layer)]
    starts = np.cumsum([0] + need[:-1])
    cur = list(lens)
    times = []
    for _ in range(steps + 1):
        np_ = max(-(-n // page) for n in cur)
        table = np.zeros((b, np_), np.int64)
        mask = np.zeros((b, np_ * page + 1), np.int64)
        for r, n in enumerate(cur):
            used = -(-n // page)
            table[r, :used] = np.arange(starts[r], starts[r] + used)
            mask[r, :n] = 1
        mask[:, -1] = 1
        feeds: dict[str, np.ndarray] = {"input_ids": np.full((b, 1), 5, np.int64), "attention_mask": mask,
                                        "block_table": table}
        for i in range(n_layer):
            feeds[f"past_key_values.{i}.key"] = pool[2 * i]
            feeds[f"past_key_values.{i}.value"] = pool[2 * i + 1]
        t0 = time.perf_counter()
        out = sess.run(None, feeds)
        for j in range(2 * n_layer):
            for r, n in enumerate(cur):
                pool[j][:, starts[r] + n // page, n % page] = out[1 + j][r, :, 0]
        times.append(time.perf_counter() - t0)
        cur = [n + 1 for n in cur]
    return times[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--standard", type=Path, required=True)
    ap.add_argument("--slots", type=Path, help="a GroupQueryAttention slot graph (slot_graph)")
    ap.add_argument("--append", type=Path, help="an append graph (slot_graph --attention append)")
    ap.add_argument("--paged", type=Path, help="a paged graph (slot_graph --attention paged)")
    ap.add_argument("--page-tokens", type=int, default=16, help="page size for --paged (the engine's is 16)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scenarios", default="1x40,8x40,8x1000,4x40+4x1000,7x40+1x1900",
                    help=f"comma-separated, of {', '.join(SCENARIOS)}")
    a = ap.parse_args()
    cfg = json.loads((a.standard / "config.json").read_text())
    others = [(label, session(path, a.threads), fn) for label, path, fn in
              (("slots", a.slots, slot_steps), ("append", a.append, append_steps),
               ("paged", a.paged, functools.partial(paged_steps, page=a.page_tokens))) if path is not None]
    if not others:
        ap.error("give --slots, --append, --paged or several")
    std = session(a.standard, a.threads)
    kv_token = 2 * cfg["n_layer"] * cfg["hidden_size"] * 4
    print(f"KV per token: {kv_token / 1024:.0f} KiB; threads {a.threads}; {a.steps} steps x {a.reps} reps", flush=True)
    head = "".join(f" {label} step ms | standard / {label} |" for label, _, _ in others)
    print(f"| scenario | KV live MiB | standard KV moved per step MiB | standard step ms |{head}")
    print("|---|---|---|---|" + "---|---|" * len(others))
    for name in a.scenarios.split(","):
        lens = SCENARIOS[name]
        s_t: list[float] = []
        o_t: list[list[float]] = [[] for _ in others]
        for _ in range(a.reps):
            s_t += standard_steps(std, cfg, lens, a.steps)
            for j, (_, sess, fn) in enumerate(others):
                o_t[j] += fn(sess, cfg, lens, a.steps)
        s = statistics.median(s_t) * 1e3
        live = sum(lens) * kv_token / 2**20
        moved = 2 * len(lens) * max(lens) * kv_token / 2**20  # read past + write present, every row at the widest
        cells = "".join(f" {statistics.median(t) * 1e3:.1f} | {s / (statistics.median(t) * 1e3):.2f} |" for t in o_t)
        print(f"| {name} | {live:.0f} | {moved:.0f} | {s:.1f} |{cells}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
