#!/usr/bin/env python3
"""Writes the named seed inputs of the *FuzzTest classes (src/test/resources/.../<Class>Inputs/<method>/).

Run from the repository root: python3 src/test/fuzz/make_seeds.py. Crashers that Jazzer adds
(crash-<sha1>) are regression inputs too and are left alone; this only (re)writes the seeds below.
"""
import base64
import gzip
import hashlib
import io
import json
import struct
import tarfile
import zipfile
from pathlib import Path

RES = Path("src/test/resources/dev/prefixgate")


def put(pkg, cls, method, name, data):
    d = RES / pkg / f"{cls}Inputs" / method
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def js(o):
    return json.dumps(o, separators=(",", ":"))


# --- chat / completion requests -------------------------------------------------------------
def req(name, body):
    put("api", "CompletionRequestFuzzTest", "parse", name, body)


req("chat_full.json", js({
    "model": "acme-support", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "Why?"}]}],
    "max_completion_tokens": 8, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "seed": 42,
    "repetition_penalty": 1.1, "stop": ["\n", "Human:"], "stream": True,
    "stream_options": {"include_usage": True}, "n": 1, "user": "u1", "ignore_eos": False,
    "return_token_ids": True, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False}))
req("completion.json", js({"model": "base", "prompt": "Once upon", "max_tokens": 4,
                           "temperature": 0, "echo": False, "suffix": None}))
req("empty", b"")
req("blank", b" \r\n\t ")
req("null", b"null")
req("array", b"[1,2]")
req("truncated.json", b'{"messages":[{"role":"user","content":"h')
req("deep_nesting.json", b'{"prompt":' + b"[" * 5000)
req("big_numbers.json", b'{"prompt":"x","max_tokens":1e400,"seed":123456789012345678901234567890}')
req("float_tokens.json", b'{"prompt":"x","max_tokens":2.0,"top_k":1.5,"temperature":1e309}')
req("bad_utf8.json", b'{"prompt":"\xff\xfe\xc3","model":"\xed\xa0\x80"}')
req("lone_surrogate.json", b'{"prompt":"\\ud800","stop":"\\udc00"}')
req("system_late.json", js({"messages": [{"role": "user", "content": "a"},
                                         {"role": "system", "content": "b"}]}))
req("wrong_types.json", js({"messages": "hi", "stop": [1], "stream": "yes", "n": 2}))
req("stream_options_without_stream.json",
    js({"prompt": "x", "stream_options": {"include_usage": True}}))
req("unknown_field.json", js({"prompt": "x", "best_of": 2}))
req("duplicate_keys.json", b'{"prompt":"a","prompt":5}')
req("too_many_stops.json", js({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}))
req("many_messages.json", js({"messages": [{"role": "user", "content": "a"}] * 513}))

# --- safetensors ------------------------------------------------------------------------------
def st(header, data=b"", pad=True):
    h = js(header).encode() if not isinstance(header, bytes) else header
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def tensor(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def safe(name, data):
    put("engine", "SafetensorsFuzzTest", "parse", name, data)


f32 = struct.pack("<6f", *range(6))
safe("f32.safetensors", st({"__metadata__": {"format": "pt"}, "t": tensor("F32", [2, 3], 0, 24)}, f32))
safe("mixed.safetensors", st({"a": tensor("F16", [2], 0, 4), "b": tensor("BF16", [1, 2], 4, 8),
                              "c": tensor("I64", [1], 8, 16), "d": tensor("BOOL", [0, 5], 16, 16),
                              "e": tensor("U8", [], 16, 17)}, b"\x00\x3c\x00\xbc\x80\x3f\x00\x40" + b"\x01" * 9))
safe("empty", b"")
safe("short", b"\x02\x00\x00\x00\x00\x00\x00")
safe("header_length_huge", b"\xff" * 8 + b"{}")
safe("header_length_past_end", struct.pack("<Q", 100) + b"{}")
safe("header_not_object", st(b"[1,2]"))
safe("header_not_json", st(b'{"t":'))
safe("header_trailing", st(b'{} {"x":1}'))
safe("shape_overflow_multiply", st({"t": tensor("F32", [4294967296, 4294967296, 4], 0, 0)}))
# 2^62 F32 elements are 2^64 bytes: wraps to 0 in a long, so [0, 0] looks right.
safe("shape_overflow_bytes", st({"t": tensor("F32", [4611686018427387904], 0, 0)}))
safe("shape_negative", st({"t": tensor("F32", [-1], 0, 0)}))
safe("shape_fraction", st({"t": tensor("F32", [1.5], 0, 4)}, b"\0" * 4))
safe("shape_string", st({"t": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}, b"\0" * 8))
safe("offsets_overlap", st({"a": tensor("U8", [4], 0, 4), "b": tensor("U8", [4], 2, 6)}, b"\0" * 6))
safe("offsets_hole", st({"a": tensor("U8", [2], 0, 2), "b": tensor("U8", [2], 4, 6)}, b"\0" * 6))
safe("offsets_huge", st({"a": tensor("U8", [2], 9223372036854775806, 9223372036854775807)}))
safe("trailing_bytes", st({"a": tensor("U8", [2], 0, 2)}, b"\0" * 5))
safe("tensor_not_object", st({"a": 5}))
safe("unknown_dtype", st({"a": tensor("F8_E4M3", [1], 0, 1)}, b"\0"))

# --- whole adapters (2-byte config length, config, safetensors) -------------------------------
CONFIG = {"peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": 2,
          "num_layers": 2, "num_attention_heads": 2, "token_dim": 4,
          "base_model_name_or_path": "tiny-bloom", "prefix_projection": False}
EMB = st({"prompt_embeddings": tensor("F32", [2, 16], 0, 128)}, struct.pack("<32f", *[i / 10 for i in range(32)]))


def adapter(name, cfg, weights=EMB):
    c = cfg if isinstance(cfg, bytes) else js(cfg).encode()
    put("engine", "PrefixAdapterFuzzTest", "read", name, struct.pack(">H", len(c)) + c + weights)


adapter("valid", CONFIG)
adapter("valid_f16", CONFIG, st({"prompt_embeddings": tensor("F16", [2, 16], 0, 64)}, b"\x00\x3c" * 32))
adapter("nan", CONFIG, st({"prompt_embeddings": tensor("F32", [2, 16], 0, 128)}, b"\x00\x00\xc0\x7f" * 32))
adapter("wrong_shape", CONFIG, st({"prompt_embeddings": tensor("F32", [4, 8], 0, 128)}, b"\0" * 128))
adapter("extra_tensor", CONFIG, st({"prompt_embeddings": tensor("F32", [2, 16], 0, 128),
                                    "x": tensor("U8", [1], 128, 129)}, b"\0" * 129))
adapter("int_dtype", CONFIG, st({"prompt_embeddings": tensor("I32", [2, 16], 0, 128)}, b"\0" * 128))
adapter("submodules", dict(CONFIG, num_transformer_submodules=2))
adapter("huge_tokens", dict(CONFIG, num_virtual_tokens=2 ** 31))
adapter("fraction_tokens", dict(CONFIG, num_virtual_tokens=2.5))
adapter("config_not_object", b"[]")
adapter("config_empty", b"")
adapter("other_peft", dict(CONFIG, peft_type="LORA"))

# --- adapter archives -------------------------------------------------------------------------
ACFG = js(CONFIG).encode()


def zipped(entries, compression=zipfile.ZIP_DEFLATED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, data)
    return b.getvalue()


def tgz(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w:gz", format=tarfile.GNU_FORMAT) as t:
        for m, data in members:
            t.addfile(m, io.BytesIO(data) if data is not None else None)
    return b.getvalue()


def member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    m = tarfile.TarInfo(name)
    m.type = kind
    m.size = len(data) if kind == tarfile.REGTYPE else 0
    m.linkname = link
    return m, (data if kind == tarfile.REGTYPE else None)


def arc(name, data):
    put("adapter", "AdapterArchiveFuzzTest", "read", name, data)


good = [("adapter/adapter_config.json", ACFG), ("adapter/adapter_model.safetensors", EMB)]
arc("valid.zip", zipped(good))
arc("stored.zip", zipped(good, zipfile.ZIP_STORED))
arc("valid.tar.gz", tgz([member("adapter/", kind=tarfile.DIRTYPE)] + [member(n, d) for n, d in good]))
arc("empty", b"")
arc("pk_only", b"PK\x03\x04")
arc("gzip_only", b"\x1f\x8b")
arc("truncated.zip", zipped(good)[:90])
arc("truncated.tar.gz", tgz([member(n, d) for n, d in good])[:120])
arc("gzip_not_tar", gzip.compress(b"hello, this is not a tar file" * 30))
arc("traversal.zip", zipped([("../adapter_config.json", ACFG), ("adapter_model.safetensors", EMB)]))
arc("absolute.zip", zipped([("/etc/adapter_config.json", ACFG)]))
arc("drive.zip", zipped([("C:\\adapter_config.json", ACFG)]))
arc("symlink.tar.gz", tgz([member("adapter_config.json", kind=tarfile.SYMTYPE, link="/etc/passwd")]))
arc("hardlink.tar.gz", tgz([member("adapter_model.safetensors", kind=tarfile.LNKTYPE, link="x")]))
arc("duplicate.zip", zipped(good + [("b/adapter_config.json", ACFG)]))
arc("many_entries.zip", zipped([(f"f{i}", b"") for i in range(65)]))
arc("bomb.zip", zipped([("adapter_model.safetensors", b"\0" * (4 * 1024 * 1024))]))
arc("bomb.tar.gz", tgz([member("adapter_model.safetensors", b"\0" * (4 * 1024 * 1024))]))
# A zip entry whose name is not UTF-8 (same length, so the headers stay consistent).
arc("latin1_name.zip", zipped([("caf\u00e9.txt", b"x")]).replace("café".encode(), b"caf\xe9\xff"))
# GNU long name: a 4 MiB file name, read by the tar reader before any entry limit applies.
long = tarfile.TarInfo("L" * (4 * 1024 * 1024))
long.size = 1
arc("long_name.tar.gz", tgz([(long, b"x")]))

# --- Kafka adapter events ---------------------------------------------------------------------
FP = "ab" * 32


def event(**over):
    w = over.pop("weights", EMB)
    e = {"eventId": "e1", "producer": "trainer", "tenant": "acme", "adapter": "support",
         "version": 1, "baseModel": {"fingerprint": FP, "name": "tiny-bloom"}, "peftConfig": CONFIG,
         "sha256": hashlib.sha256(w).hexdigest(), "safetensors": base64.b64encode(w).decode(),
         "activate": "if-none", "metrics": {"train_loss": 1.5}}
    e.update(over)
    return e


def ev(name, value, key=b"acme/support"):
    put("adapter", "AdapterEventsFuzzTest", "check", name,
        (key + b"\n" if key is not None else b"") + (value if isinstance(value, bytes) else js(value).encode()))


ev("accepted", event())
ev("no_key", event(), key=None)
ev("wrong_key", event(), key=b"acme/other")
ev("key_not_utf8", event(), key=b"acme/\xff")
ev("bad_base64", event(safetensors="!!!"))
ev("sha_mismatch", event(sha256="00" * 32))
ev("other_base", event(baseModel={"fingerprint": "cd" * 32}))
ev("schema_extra_field", event(extra=1))
ev("schema_missing", {"tenant": "acme"})
ev("schema_bad_tenant", event(tenant="Acme/../x"))
ev("empty_value", b"")
ev("null_value", b"null")
ev("array_value", b"[]")
ev("not_json", b"{\"eventId\":")
ev("deep", b"[" * 3000)
ev("huge_version", event(version=10 ** 30))
ev("oversize", event(weights=b"\0" * (64 * 1024 + 1)))

# --- training-status events -------------------------------------------------------------------
def status(name, value):
    put("retrain", "RetrainStatusFuzzTest", "status", name, value if isinstance(value, bytes) else js(value))


status("running", {"requestId": "r1", "tenant": "acme", "state": "running", "progress": 42.5,
                   "step": 10, "loss": 1.25, "at": "2025-01-01T00:00:00Z"})
status("succeeded", {"requestId": "r1", "state": "succeeded", "adapterVersion": 3, "digest": "ab" * 32,
                     "metrics": {"eval_loss_base": 2.0, "eval_loss_adapter": 1.0}})
status("failed", {"requestId": "r1", "state": "failed", "reason": "x" * 3000})
status("big_step", b'{"requestId":"r1","state":"running","step":3000000000}')
status("huge_step", b'{"requestId":"r1","state":"running","step":1e30}')
status("fraction_step", b'{"requestId":"r1","state":"running","step":2.0}')
status("huge_loss", b'{"requestId":"r1","state":"running","loss":1e400}')
status("bad_state", {"requestId": "r1", "state": "done"})
status("empty", b"")
status("null", b"null")
status("bad_date", {"requestId": "r1", "state": "queued", "at": "yesterday"})

# --- JSONL data sets --------------------------------------------------------------------------
def ds(name, value):
    put("retrain", "DatasetsFuzzTest", "validate", name, value)


REC = js({"instruction": "Translate", "input": "hola", "output": "hello"})
ds("two_records.jsonl", REC + "\n" + js({"instruction": "Say hi", "output": "hi"}) + "\n")
ds("crlf_blank_lines.jsonl", "\r\n" + REC + "\r\n\r\n  \n" + REC)
ds("empty", b"")
ds("blank", b"\n \n\t\n")
ds("bad_utf8.jsonl", b'{"instruction":"\xff","output":"x"}')
ds("not_object.jsonl", b"[1]\n")
ds("blank_output.jsonl", js({"instruction": "a", "output": "   "}))
ds("input_not_string.jsonl", js({"instruction": "a", "output": "b", "input": 3}))
ds("trailing_data.jsonl", REC + ' {"instruction":"x"}')
ds("deep.jsonl", b"[" * 3000)
ds("bom.jsonl", "\ufeff" + REC)

# --- detokenizer (big-endian 16-bit ids, 0xFFFF ends a sequence) -------------------------------
VOCAB = json.load(open("trainer/fixtures/tiny-bloom/tokenizer.json"))["model"]["vocab"]


def byte_token(b):
    # GPT-2/BLOOM bytes_to_unicode: the vocabulary symbol of one raw byte.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    n, m = 0, {}
    for x in range(256):
        if x in printable:
            m[x] = chr(x)
        else:
            m[x] = chr(256 + n)
            n += 1
    return VOCAB[m[b]]


def ids(*xs):
    return b"".join(struct.pack(">H", x) for x in xs)


def det(name, value):
    put("engine", "DetokenizerFuzzTest", "next", name, value)


det("split_chars", ids(*[byte_token(b) for b in "señor 🙂 ü".encode()]))
det("invalid_bytes", ids(*[byte_token(b) for b in b"a\xc3b\xff\xf0\x9f\x99c\xed\xa0\x80"]))
det("unfinished_then_flush", ids(byte_token(0xF0), byte_token(0x9F), 0xFFFF, byte_token(0x99), byte_token(0x82)))
det("specials_and_out_of_vocab", ids(0, 1, 2, 3, 4096, 0xFFFE, byte_token(0x41)))
det("empty", b"")
det("odd_length", b"\x00")
det("long_sequence", ids(*[byte_token(b) for b in ("é" * 100 + "🙂" * 50).encode()]))
