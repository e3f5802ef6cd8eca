"""The "PyTorch + PEFT generate" benchmark subject (the tutorial's serving path), single stream.

    python -m prefixgate_trainer.bench_torch --model DIR --adapter DIR --new-tokens 64 --reps 3

Prints one JSON object: median TTFT (prefill + first token) and decode tok/s of `PeftModel.generate`
with greedy decoding and eos not stopping it, so every subject produces the same number of tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import GenerationConfig

from .corpus import prompt_of
from .loading import load_base, with_adapter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--adapter", type=Path, required=True)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    base, tok = load_base(a.model)
    model = with_adapter(base, a.adapter)
    ids = torch.tensor([tok(prompt_of("Greet the person.", "Nia"), add_special_tokens=False)["input_ids"]])

    def run(n: int) -> float:
        cfg = GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=None, eos_token_id=[],
                               pad_token_id=3, num_beams=1)
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=cfg)
        return time.perf_counter() - t

    run(2)  # warm-up
    ttfts = [run(1) for _ in range(a.reps)]
    totals = [run(a.new_tokens) for _ in range(a.reps)]
    ttft = statistics.median(ttfts)
    decode = (a.new_tokens - 1) / max(1e-9, statistics.median(totals) - ttft)
    print(json.dumps({"subject": "pytorch-peft", "concurrency": 1, "ttft_ms": round(ttft * 1000, 2),
                      "decode_tok_s": round(decode, 2),
                      "aggregate_tok_s": round(a.new_tokens / statistics.median(totals), 2)}), flush=True)


if __name__ == "__main__":
    main()
