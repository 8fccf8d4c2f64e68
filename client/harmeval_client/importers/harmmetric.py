"""Parser for the HarmMetric Eval benchmark (Yang, Zheng et al. 2025), releases v1 and v2.

Both releases are JSONL. The layout is detected from the first row's fields:

* **v2** (``dataset_v2.jsonl``): one row per response, fields ``harmful_prompt``,
  ``response``, ``response_category``, ``attack_method``, ``source``, ``prompt_id``,
  ``response_id``; ``response_id = prompt_id * 100 + slot`` with the slots of :data:`SLOTS`.
* **v1** (``dataset_v1.jsonl``): one row per prompt, fields ``harmful_prompt``,
  ``ref_res_0/1``, ``harmful_res_0..3``, ``refusal``, ``prevention``, ``redirection``,
  ``irr_res_0..2``, ``useless_aff`` and ``id``. v1 has no prompt-repetition response: the
  prompt itself fills slot 11, as the benchmark's authors scored it.

The file is validated strictly - a benchmark with a missing or mislabelled slot gives a wrong
score without any visible sign - and the first problem raises :class:`BenchmarkFileError`
naming file, line and field. Reference answers (v2 slot 0, v1 ``ref_res_*``) are kept apart in
:attr:`BenchmarkPrompt.references`: only reference-based metrics may see them, so they are not
among :attr:`Benchmark.responses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harmeval_client.tables import TableFileError, jsonl_records, read_text

__all__ = [
    "SLOTS",
    "V1_FIELDS",
    "V2_CATEGORIES",
    "Benchmark",
    "BenchmarkFileError",
    "BenchmarkPrompt",
    "BenchmarkResponse",
    "load_harmmetric",
]

SLOTS: dict[int, str] = {
    0: "reference",
    1: "harmful",
    2: "harmful",
    3: "harmful",
    4: "harmful",
    5: "refusal",
    6: "prevention",
    7: "redirection",
    8: "irrelevant",
    9: "irrelevant",
    10: "irrelevant",
    11: "repetition",
    12: "useless_affirmation",
}
"""Slot -> category. Slots 1-4 harmful (1-2 plain, 3-4 from jailbreak attacks in v2)."""

_REFERENCE_SLOT = 0
_REPETITION_SLOT = 11
_SCORED_SLOTS = tuple(slot for slot in SLOTS if slot != _REFERENCE_SLOT)

V2_CATEGORIES: dict[str, str] = {
    "reference response": "reference",
    "harmful response": "harmful",
    "safe response/refusal": "refusal",
    "safe response/prevention": "prevention",
    "safe response/redirection": "redirection",
    "irrelevant response": "irrelevant",
    "useless response/prompt repetition": "repetition",
    "useless response/useless affirmation": "useless_affirmation",
}
"""v2 ``response_category`` text -> :data:`SLOTS` category."""

V1_FIELDS: dict[str, int] = {
    "harmful_res_0": 1,
    "harmful_res_1": 2,
    "harmful_res_2": 3,
    "harmful_res_3": 4,
    "refusal": 5,
    "prevention": 6,
    "redirection": 7,
    "irr_res_0": 8,
    "irr_res_1": 9,
    "irr_res_2": 10,
    "useless_aff": 12,
}
"""v1 response field -> slot (slot 11 is the prompt itself)."""

_V1_REFERENCES = ("ref_res_0", "ref_res_1")
_PROMPT = "harmful_prompt"


@dataclass(frozen=True)
class BenchmarkResponse:
    prompt_id: int
    response_id: int
    """``prompt_id * 100 + slot`` in both releases."""
    slot: int
    category: str
    """:data:`SLOTS` ``[slot]``."""
    text: str
    attack_method: str
    """Jailbreak that produced a harmful response (v2, e.g. ``PAIR``); "" otherwise and in v1."""


@dataclass(frozen=True)
class BenchmarkPrompt:
    prompt_id: int
    text: str
    references: tuple[str, ...]
    """Reference harmful answers, for reference-based metrics only (v2: slot 0; v1: 2)."""
    source: str = ""
    """Data set the prompt came from (v2 ``source``, e.g. ``SafeRLHF``); "" in v1."""


@dataclass
class Benchmark:
    version: Literal["v1", "v2"]
    prompts: list[BenchmarkPrompt]
    """In order of first appearance in the file."""
    responses: list[BenchmarkResponse]
    """Slots 1-12 of every prompt, ordered by prompt then slot; no references."""


class BenchmarkFileError(TableFileError):
    """The benchmark file is unreadable or invalid.

    The message reads like ``"dataset_v2.jsonl line 14: field 'response_id' ..."``; the parts
    are also attributes (``line``/``field`` are None for problems of the whole file).
    """


def _rows(path: Path) -> list[tuple[int, dict[str, object]]]:
    """(1-based line, JSON object) for every non-blank line."""
    return jsonl_records(str(path), read_text(path, BenchmarkFileError), BenchmarkFileError)


@dataclass
class _Row:
    """Typed access to one JSON object, raising errors that name the line and field."""

    source: str
    line: int
    data: dict[str, object]

    def error(self, field: str, detail: str) -> BenchmarkFileError:
        return BenchmarkFileError(self.source, detail, line=self.line, field=field)

    def string(self, field: str, *, required: bool = True, allow_empty: bool = False) -> str:
        if field not in self.data or self.data[field] is None:
            if required:
                raise self.error(field, "is missing")
            return ""
        value = self.data[field]
        if not isinstance(value, str):
            raise self.error(field, f"must be a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            raise self.error(field, "is empty")
        return value

    def integer(self, field: str) -> int:
        if field not in self.data or self.data[field] is None:
            raise self.error(field, "is missing")
        value = self.data[field]
        # bool is an int subclass; true/false as an id is a data error, not 1/0.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(field, f"must be an integer, got {value!r}")
        if value < 0:
            raise self.error(field, f"must not be negative, got {value}")
        return value


def _load_v2(source: str, rows: list[tuple[int, dict[str, object]]]) -> Benchmark:
    prompts: dict[int, tuple[int, str, str]] = {}  # prompt_id -> (first line, text, source)
    texts: dict[tuple[int, int], tuple[int, str, str]] = {}  # (pid, slot) -> (line, text, attack)
    for line, data in rows:
        row = _Row(source, line, data)
        prompt_id = row.integer("prompt_id")
        response_id = row.integer("response_id")
        slot = response_id - prompt_id * 100
        if slot not in SLOTS:
            raise row.error(
                "response_id",
                f"is {response_id}, expected prompt_id * 100 + slot (0-12) "
                f"for prompt_id {prompt_id}",
            )
        raw_category = row.string("response_category")
        category = V2_CATEGORIES.get(raw_category.strip().lower())
        if category != SLOTS[slot]:
            raise row.error(
                "response_category",
                f"is {raw_category!r} but slot {slot} (response_id {response_id}) "
                f"holds {SLOTS[slot]!r} responses",
            )
        text = row.string(_PROMPT)
        first = prompts.setdefault(prompt_id, (line, text, row.string("source", required=False)))
        if first[1] != text:
            raise row.error(
                _PROMPT, f"differs from the prompt of prompt_id {prompt_id} on line {first[0]}"
            )
        if (prompt_id, slot) in texts:
            raise row.error(
                "response_id",
                f"repeats response_id {response_id} of line {texts[(prompt_id, slot)][0]}",
            )
        # An empty response is a legitimate thing for a metric to score; only its type is checked.
        response = row.string("response", allow_empty=True)
        attack = row.string("attack_method", required=False, allow_empty=True)
        texts[(prompt_id, slot)] = (line, response, attack)

    benchmark = Benchmark("v2", [], [])
    for prompt_id, (line, text, origin) in prompts.items():
        missing = [slot for slot in SLOTS if (prompt_id, slot) not in texts]
        if missing:
            raise BenchmarkFileError(
                source,
                f"prompt_id {prompt_id} has no response for slot(s) "
                f"{', '.join(map(str, missing))} (response_id {prompt_id * 100 + missing[0]}...)",
                line=line,
                field="response_id",
            )
        reference = texts[(prompt_id, _REFERENCE_SLOT)][1]
        benchmark.prompts.append(BenchmarkPrompt(prompt_id, text, (reference,), origin))
        for slot in _SCORED_SLOTS:
            _, response, attack = texts[(prompt_id, slot)]
            benchmark.responses.append(
                BenchmarkResponse(
                    prompt_id, prompt_id * 100 + slot, slot, SLOTS[slot], response, attack
                )
            )
    return benchmark


def _load_v1(source: str, rows: list[tuple[int, dict[str, object]]]) -> Benchmark:
    benchmark = Benchmark("v1", [], [])
    seen: dict[int, int] = {}  # prompt_id -> line
    has_ids = "id" in rows[0][1]
    for index, (line, data) in enumerate(rows):
        row = _Row(source, line, data)
        # Why the file's own ``id`` when present: it is the authors' identifier and has gaps
        # (0..239 for 238 rows), so the row index would silently renumber prompts after a gap.
        # Files without ``id`` fall back to the 0-based row index.
        prompt_id = row.integer("id") if has_ids else index
        if prompt_id in seen:
            raise row.error("id", f"repeats id {prompt_id} of line {seen[prompt_id]}")
        seen[prompt_id] = line
        text = row.string(_PROMPT)
        references = tuple(row.string(name, allow_empty=True) for name in _V1_REFERENCES)
        responses = {slot: row.string(name, allow_empty=True) for name, slot in V1_FIELDS.items()}
        responses[_REPETITION_SLOT] = text
        benchmark.prompts.append(BenchmarkPrompt(prompt_id, text, references))
        for slot in _SCORED_SLOTS:
            benchmark.responses.append(
                BenchmarkResponse(
                    prompt_id, prompt_id * 100 + slot, slot, SLOTS[slot], responses[slot], ""
                )
            )
    return benchmark


def load_harmmetric(path: Path) -> Benchmark:
    """Load ``dataset_v1.jsonl`` or ``dataset_v2.jsonl``; the layout comes from the first row.

    A first row with ``response_id`` is v2, one with ``harmful_res_0`` is v1. Raises
    :class:`BenchmarkFileError` for an unreadable, empty or invalid file.
    """
    path = Path(path)
    source = str(path)
    rows = list(_rows(path))
    if not rows:
        raise BenchmarkFileError(source, "no rows")
    first_line, first = rows[0]
    if "response_id" in first:
        return _load_v2(source, rows)
    if "harmful_res_0" in first:
        return _load_v1(source, rows)
    raise BenchmarkFileError(
        source,
        "unrecognised layout: expected 'response_id' (v2) or 'harmful_res_0' (v1) among "
        f"{', '.join(sorted(first)) or 'no fields'}",
        line=first_line,
    )
