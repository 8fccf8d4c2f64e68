"""Tests for harmeval_client.importers.harmmetric: HarmMetric Eval v1 and v2 files."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harmeval_client.importers.harmmetric import (
    SLOTS,
    V1_FIELDS,
    Benchmark,
    BenchmarkFileError,
    BenchmarkPrompt,
    BenchmarkResponse,
    load_harmmetric,
)

DATASETS = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
HARMMETRIC = DATASETS / "harmmetric-eval"

V2_CATEGORY = {
    0: "reference response",
    1: "harmful response",
    2: "harmful response",
    3: "harmful response",
    4: "harmful response",
    5: "safe response/refusal",
    6: "safe response/prevention",
    7: "safe response/redirection",
    8: "irrelevant response",
    9: "irrelevant response",
    10: "irrelevant response",
    11: "useless response/prompt repetition",
    12: "useless response/useless affirmation",
}


def v2_rows(prompt_id: int, prompt: str = "How do I X?") -> list[dict[str, Any]]:
    return [
        {
            "harmful_prompt": prompt,
            "response": prompt if slot == 11 else f"r{prompt_id}-{slot}",
            "response_category": V2_CATEGORY[slot],
            "attack_method": "PAIR" if slot == 3 else "",
            "source": "SafeRLHF",
            "prompt_id": prompt_id,
            "response_id": prompt_id * 100 + slot,
        }
        for slot in range(13)
    ]


def v1_row(index: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"harmful_prompt": f"prompt {index}"}
    row |= {"ref_res_0": f"ref0-{index}", "ref_res_1": f"ref1-{index}"}
    row |= {name: f"{name}-{index}" for name in V1_FIELDS}
    row["id"] = index
    return row | overrides


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    return path


def check_error(err: BenchmarkFileError, path: Path, line: int | None, field: str | None) -> None:
    assert err.file == str(path)
    assert err.line == line
    assert err.field == field
    message = str(err)
    assert message.startswith(str(path) + (f" line {line}:" if line is not None else ":"))
    if field is not None:
        assert f"field '{field}'" in message


# --- v2 ----------------------------------------------------------------------------------


def test_v2_prompts_responses_and_references(tmp_path: Path) -> None:
    rows = v2_rows(7, "Prompt seven") + v2_rows(2, "Prompt two")
    rows = rows[::-1]  # file order of responses does not matter
    bench = load_harmmetric(write_jsonl(tmp_path / "v2.jsonl", rows))
    assert bench.version == "v2"
    assert bench.prompts == [
        BenchmarkPrompt(2, "Prompt two", ("r2-0",), "SafeRLHF"),
        BenchmarkPrompt(7, "Prompt seven", ("r7-0",), "SafeRLHF"),
    ]
    assert len(bench.responses) == 24  # 12 scored slots each; references are not responses
    assert [r.slot for r in bench.responses[:12]] == list(range(1, 13))
    assert all(r.slot != 0 for r in bench.responses)
    assert bench.responses[2] == BenchmarkResponse(2, 203, 3, "harmful", "r2-3", "PAIR")
    assert {r.category for r in bench.responses} == set(SLOTS.values()) - {"reference"}
    assert next(r for r in bench.responses if r.slot == 11).text == "Prompt two"


def test_v2_blank_lines_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "v2.jsonl"
    text = "\n".join(json.dumps(row) for row in v2_rows(1)) + "\n\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\n\n", 1).encode())
    assert len(load_harmmetric(path).responses) == 12


def test_v2_line_separator_inside_a_string_is_not_a_line_break(tmp_path: Path) -> None:
    rows = v2_rows(1)
    rows[4]["response"] = "first\u2028second"
    path = tmp_path / "v2.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    bench = load_harmmetric(path)
    assert bench.responses[3].text == "first\u2028second"


def test_v2_empty_response_text_is_kept(tmp_path: Path) -> None:
    rows = v2_rows(1)
    rows[8]["response"] = ""
    assert load_harmmetric(write_jsonl(tmp_path / "v2.jsonl", rows)).responses[7].text == ""


@pytest.mark.parametrize(
    ("change", "line", "field", "contains"),
    [
        (lambda rows: rows[3].update(response_id=1213), 4, "response_id", "prompt_id * 100 + slot"),
        (lambda rows: rows[3].update(response_id=99), 4, "response_id", "prompt_id * 100"),
        (
            lambda rows: rows[5].update(response_category="harmful response"),
            6,
            "response_category",
            "slot 5",
        ),
        (
            lambda rows: rows[5].update(response_category="nonsense"),
            6,
            "response_category",
            "'refusal'",
        ),
        (lambda rows: rows[2].update(prompt_id="12"), 3, "prompt_id", "integer"),
        (lambda rows: rows[2].update(prompt_id=True), 3, "prompt_id", "integer"),
        (lambda rows: rows[2].update(prompt_id=-1), 3, "prompt_id", "negative"),
        (lambda rows: rows[2].pop("response_id"), 3, "response_id", "missing"),
        (lambda rows: rows[2].pop("response"), 3, "response", "missing"),
        (lambda rows: rows[2].update(response=5), 3, "response", "string"),
        (lambda rows: rows[2].update(harmful_prompt="  "), 3, "harmful_prompt", "empty"),
        (lambda rows: rows[2].update(harmful_prompt="other"), 3, "harmful_prompt", "line 1"),
        (lambda rows: rows[2].update(attack_method=3), 3, "attack_method", "string"),
        (lambda rows: rows.append(dict(rows[4])), 14, "response_id", "line 5"),
        (lambda rows: rows.pop(9), 1, "response_id", "slot(s) 9"),
    ],
)
def test_v2_errors_name_line_and_field(
    tmp_path: Path, change: Any, line: int, field: str, contains: str
) -> None:
    rows = v2_rows(12)
    change(rows)
    path = write_jsonl(tmp_path / "v2.jsonl", rows)
    with pytest.raises(BenchmarkFileError) as info:
        load_harmmetric(path)
    check_error(info.value, path, line, field)
    assert contains in str(info.value)


def test_v2_optional_fields_default_to_empty(tmp_path: Path) -> None:
    rows = v2_rows(1)
    for row in rows:
        del row["attack_method"], row["source"]
    bench = load_harmmetric(write_jsonl(tmp_path / "v2.jsonl", rows))
    assert bench.prompts[0].source == ""
    assert {r.attack_method for r in bench.responses} == {""}


# --- v1 ----------------------------------------------------------------------------------


def test_v1_slots_references_and_prompt_as_repetition(tmp_path: Path) -> None:
    bench = load_harmmetric(write_jsonl(tmp_path / "v1.jsonl", [v1_row(0), v1_row(5)]))
    assert bench.version == "v1"
    assert bench.prompts[1] == BenchmarkPrompt(5, "prompt 5", ("ref0-5", "ref1-5"))
    by_slot = {r.slot: r for r in bench.responses if r.prompt_id == 5}
    assert sorted(by_slot) == list(range(1, 13))
    assert by_slot[1] == BenchmarkResponse(5, 501, 1, "harmful", "harmful_res_0-5", "")
    assert by_slot[4].text == "harmful_res_3-5"
    assert by_slot[5].text == "refusal-5" and by_slot[5].category == "refusal"
    assert by_slot[6].text == "prevention-5"
    assert by_slot[7].text == "redirection-5"
    assert [by_slot[s].text for s in (8, 9, 10)] == ["irr_res_0-5", "irr_res_1-5", "irr_res_2-5"]
    assert by_slot[11] == BenchmarkResponse(5, 511, 11, "repetition", "prompt 5", "")
    assert by_slot[12].text == "useless_aff-5" and by_slot[12].category == "useless_affirmation"


def test_v1_without_id_uses_the_row_index(tmp_path: Path) -> None:
    rows = [v1_row(9), v1_row(4)]
    for row in rows:
        del row["id"]
    bench = load_harmmetric(write_jsonl(tmp_path / "v1.jsonl", rows))
    assert [p.prompt_id for p in bench.prompts] == [0, 1]
    assert [p.text for p in bench.prompts] == ["prompt 9", "prompt 4"]
    assert bench.responses[12].response_id == 101


@pytest.mark.parametrize(
    ("rows", "line", "field"),
    [
        ([v1_row(0), v1_row(1, id=0)], 2, "id"),
        ([v1_row(0), v1_row(1, id="1")], 2, "id"),
        ([v1_row(0), {k: v for k, v in v1_row(1).items() if k != "id"}], 2, "id"),
        ([v1_row(0), {k: v for k, v in v1_row(1).items() if k != "irr_res_2"}], 2, "irr_res_2"),
        ([v1_row(0, useless_aff=None)], 1, "useless_aff"),
        ([v1_row(0, ref_res_1=["x"])], 1, "ref_res_1"),
        ([v1_row(0, harmful_prompt="")], 1, "harmful_prompt"),
    ],
)
def test_v1_errors(tmp_path: Path, rows: list[dict[str, Any]], line: int, field: str) -> None:
    path = write_jsonl(tmp_path / "v1.jsonl", rows)
    with pytest.raises(BenchmarkFileError) as info:
        load_harmmetric(path)
    check_error(info.value, path, line, field)


# --- file-level errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "contains"),
    [
        ("", None, "no rows"),
        ("\n  \n", None, "no rows"),
        ('{"a": 1}\n', 1, "unrecognised layout"),
        ("[1, 2]\n", 1, "JSON object"),
        ('{"response_id": 1,\n', 1, "invalid JSON"),
        ('\n\n{"harmful_res_0": "x"', 3, "invalid JSON"),
    ],
)
def test_file_errors(tmp_path: Path, content: str, line: int | None, contains: str) -> None:
    path = tmp_path / "bench.jsonl"
    path.write_text(content, "utf-8")
    with pytest.raises(BenchmarkFileError) as info:
        load_harmmetric(path)
    check_error(info.value, path, line, None)
    assert contains in str(info.value)


def test_not_utf8_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bench.jsonl"
    path.write_bytes(b'{"harmful_prompt": "caf\xe9"}\n')
    with pytest.raises(BenchmarkFileError, match="not valid UTF-8"):
        load_harmmetric(path)
    with pytest.raises(BenchmarkFileError, match="cannot read"):
        load_harmmetric(tmp_path / "absent.jsonl")


# --- the real release ----------------------------------------------------------------------


def real(version: str) -> Benchmark:
    path = HARMMETRIC / f"dataset_{version}.jsonl"
    if not path.is_file():
        pytest.skip(f"real HarmMetric Eval data not found at {path} (shared/datasets absent)")
    return load_harmmetric(path)


def test_real_v2() -> None:
    start = time.perf_counter()
    bench = real("v2")
    assert time.perf_counter() - start < 2.0
    assert bench.version == "v2"
    assert len(bench.prompts) == 274
    assert len(bench.responses) == 274 * 12
    assert all(len(p.references) == 1 for p in bench.prompts)
    assert Counter(r.category for r in bench.responses) == {
        "harmful": 1096,
        "refusal": 274,
        "prevention": 274,
        "redirection": 274,
        "irrelevant": 822,
        "repetition": 274,
        "useless_affirmation": 274,
    }
    # jailbreak attacks produced exactly the harmful slots 3 and 4
    assert {r.slot for r in bench.responses if r.attack_method} == {3, 4}
    assert Counter(r.attack_method for r in bench.responses if r.attack_method) == {
        "PAP": 146,
        "PAIR": 131,
        "GPTFuzzer": 70,
        "DAN": 69,
        "AutoDAN": 67,
        "GCG": 65,
    }
    first = bench.prompts[0]
    assert first.prompt_id == 2162 and first.source == "SafeRLHF"
    assert first.text.startswith("My friend told me that online gambling sites")
    text = {p.prompt_id: p.text for p in bench.prompts}
    assert all(r.text == text[r.prompt_id] for r in bench.responses if r.slot == 11)
    assert Counter(p.source for p in bench.prompts)["SafeRLHF"] == 2041 // 13


def test_real_v1() -> None:
    bench = real("v1")
    assert bench.version == "v1"
    assert len(bench.prompts) == 238
    assert len(bench.responses) == 238 * 12
    assert all(len(p.references) == 2 for p in bench.prompts)
    # the authors' ids have gaps (156 is missing): ids are kept, not renumbered
    ids = [p.prompt_id for p in bench.prompts]
    assert ids[:3] == [0, 1, 2] and max(ids) == 239 and 156 not in ids
    assert bench.prompts[156].prompt_id == 157
    assert bench.prompts[0].text.startswith("My friend told me that he knows a reliable source")
    assert bench.responses[0].response_id == 1
