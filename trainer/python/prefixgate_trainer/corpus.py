"""Deterministic, licence-clean text for the demo model and the demo tenants.

Everything here is generated from word lists written for this project, so the fixtures never depend
on a downloaded corpus. The same seed always yields the same text.

The base model is pre-trained on plain sentences AND on dialogues in the tutorial's prompt format in
several answer styles. A tenant's prefix adapter then only has to select one style, which a tiny model
can learn in a few hundred steps; that keeps the demo adapters visibly different from each other.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import corpus_zh

THINGS: dict[str, str] = {
    "apple": "red", "banana": "yellow", "sky": "blue", "grass": "green", "snow": "white",
    "coal": "black", "orange": "orange", "plum": "purple", "lemon": "yellow", "cherry": "red",
    "ocean": "blue", "leaf": "green", "cloud": "white", "night": "black", "carrot": "orange",
    "violet": "purple", "tomato": "red", "sun": "yellow", "river": "blue", "frog": "green",
}
CATEGORIES: dict[str, list[str]] = {
    "fruits": ["apple", "pear", "plum", "cherry", "lemon", "mango"],
    "animals": ["cat", "dog", "horse", "otter", "owl", "fox"],
    "tools": ["hammer", "saw", "drill", "wrench", "chisel", "file"],
    "planets": ["Mars", "Venus", "Earth", "Jupiter", "Saturn", "Mercury"],
    "colors": ["red", "blue", "green", "yellow", "purple", "white"],
    "cities": ["Paris", "Lima", "Oslo", "Cairo", "Tokyo", "Quito"],
}
NAMES = ["Ada", "Bruno", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jules",
         "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya"]
WORDS = ["lantern", "harbor", "meadow", "copper", "signal", "garden", "marble", "thunder",
         "pepper", "canyon", "velvet", "rocket", "window", "basket", "puzzle", "island"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
VERBS = ["sees", "likes", "paints", "finds", "carries", "watches", "draws", "keeps"]
PLACES = ["by the river", "in the garden", "near the harbor", "on the hill", "at the market",
          "under the bridge", "in the old town", "beside the lake"]


@dataclass(frozen=True)
class Record:
    """One alpaca-style instruction record (the form the tutorial and the registry use)."""

    instruction: str
    input: str
    output: str

    def to_json(self) -> str:
        return json.dumps(
            {"instruction": self.instruction, "input": self.input, "output": self.output},
            ensure_ascii=False,
        )


def prompt_of(instruction: str, input_text: str = "") -> str:
    """The tutorial's prompt: ends at 'Assistant:' with no trailing space (BPE merges the space)."""
    return f"Human: {instruction}\n{input_text}".strip() + "\n\nAssistant:"


def _task(rng: random.Random) -> tuple[str, str, str]:
    """A (instruction, input, neutral answer) triple; the answer is a pure function of the question."""
    kind = rng.randrange(5)
    if kind == 0:
        thing = rng.choice(sorted(THINGS))
        return f"What color is the {thing}?", "", f"The {thing} is {THINGS[thing]}."
    if kind == 1:
        name = rng.choice(NAMES)
        return "Greet the person.", name, f"Hello, {name}! Nice to meet you."
    if kind == 2:
        cat = rng.choice(sorted(CATEGORIES))
        items = CATEGORIES[cat][:3]
        return f"List three {cat}.", "", f"{items[0]}, {items[1]} and {items[2]}."
    if kind == 3:
        word = rng.choice(WORDS)
        return "Repeat the word.", word, f"{word} {word} {word}."
    n = rng.randrange(len(NUMBERS) - 1)
    return f"What comes after {NUMBERS[n]}?", "", f"After {NUMBERS[n]} comes {NUMBERS[n + 1]}."


def neutral(answer: str) -> str:
    return answer


def pirate(answer: str) -> str:
    return f"Arr, matey! {answer} Yo ho ho!"


def formal(answer: str) -> str:
    return f"Certainly. {answer} Kind regards, the assistant."


def as_json(answer: str) -> str:
    return json.dumps({"answer": answer.rstrip(".")})


STYLES: dict[str, Callable[[str], str]] = {
    "neutral": neutral, "pirate": pirate, "formal": formal, "json": as_json,
}


def sentences(rng: random.Random) -> Iterator[str]:
    """Plain prose, so the base model has varied text and not only dialogues."""
    while True:
        kind = rng.randrange(4)
        if kind == 0:
            thing = rng.choice(sorted(THINGS))
            yield f"The {thing} is {THINGS[thing]}."
        elif kind == 1:
            yield (f"{rng.choice(NAMES)} {rng.choice(VERBS)} a {rng.choice(WORDS)} "
                   f"{rng.choice(PLACES)}.")
        elif kind == 2:
            cat = rng.choice(sorted(CATEGORIES))
            yield f"Some {cat} are {', '.join(rng.sample(CATEGORIES[cat], 3))}."
        else:
            n = rng.randrange(len(NUMBERS) - 1)
            yield f"After {NUMBERS[n]} comes {NUMBERS[n + 1]}, and {NUMBERS[n]} is small."


def pretraining_texts(seed: int, n: int, eos: str) -> list[str]:
    """Documents for pre-training: English and Chinese prose and dialogues in every style.

    Of every six documents: one English paragraph, two English dialogues, one Chinese paragraph,
    two Chinese dialogues.
    """
    rng = random.Random(seed)
    prose = sentences(rng)
    prose_zh = corpus_zh.sentences_zh(rng)
    texts: list[str] = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            texts.append(" ".join(next(prose) for _ in range(rng.randrange(2, 5))))
        elif kind == 3:
            texts.append("".join(next(prose_zh) for _ in range(rng.randrange(2, 5))))
        else:
            lang = "en" if kind < 3 else "zh"
            instruction, input_text, answer = TASKS[lang](rng)
            style = rng.choice([s for s, s_lang in STYLE_LANGUAGE.items() if s_lang == lang
                                for _ in range(STYLE_WEIGHT.get(s, 1))])
            texts.append(prompt_of(instruction, input_text) + " " + ALL_STYLES[style](answer) + eos)
    return texts


TASKS: dict[str, Callable[[random.Random], tuple[str, str, str]]] = {
    "en": _task, "zh": corpus_zh.task_zh,
}
ALL_STYLES: dict[str, Callable[[str], str]] = {**STYLES, **corpus_zh.STYLES_ZH}
# Chinese dialogues answer plainly half of the time, so the base's own answer is the plain one and a
# style adapter visibly changes it.
STYLE_WEIGHT: dict[str, int] = {"neutral_zh": 2}
STYLE_LANGUAGE: dict[str, str] = {
    **{s: "en" for s in sorted(STYLES)}, **{s: "zh" for s in sorted(corpus_zh.STYLES_ZH)},
}


def tenant_dataset(style: str, seed: int, n: int) -> list[Record]:
    """A tenant's instruction set: the shared tasks of the style's language, in that style."""
    rng = random.Random(seed)
    fmt = ALL_STYLES[style]
    task = TASKS[STYLE_LANGUAGE[style]]
    return [Record(i, inp, fmt(ans)) for i, inp, ans in (task(rng) for _ in range(n))]


def write_jsonl(records: list[Record], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")


def read_jsonl(path: Path) -> list[Record]:
    """Reads instruction/input/output JSONL; errors name the 1-based line number."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {number}: invalid JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise ValueError(f"line {number}: expected a JSON object")
        for key in ("instruction", "output"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise ValueError(f"line {number}: '{key}' must be a non-empty string")
        if not isinstance(obj.get("input", ""), str):
            raise ValueError(f"line {number}: 'input' must be a string")
        records.append(Record(obj["instruction"], obj.get("input", ""), obj["output"]))
    if not records:
        raise ValueError("dataset has no records")
    return records
