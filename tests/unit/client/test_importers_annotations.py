"""Tests for harmeval_client.importers.annotations: users' own human annotation files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harmeval_client.importers.annotations import (
    AnnotationFileError,
    AnnotationRow,
    load_annotation_file,
)
from harmeval_client.tables import TableFileError

HEADER = "study,prompt,model,annotator,value,rank\n"


def write(path: Path, content: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(content.encode(encoding))
    return path


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(obj) + "\n" for obj in objects)


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "study": "s1",
        "prompt": "p1",
        "model": "m1",
        "annotator": "ann",
        "value": 1,
    }
    return {k: v for k, v in (base | overrides).items() if v is not ...}


def expect_error(path: Path, line: int | None, field: str | None, contains: str = "") -> None:
    with pytest.raises(AnnotationFileError) as info:
        load_annotation_file(path)
    err = info.value
    assert isinstance(err, TableFileError) and isinstance(err, ValueError)
    assert err.file == str(path)
    assert err.line == line, str(err)
    assert err.field == field, str(err)
    message = str(err)
    where = f"{path} line {line}: " if line is not None else f"{path}: "
    assert message.startswith(where), message
    if field is not None:
        assert message.startswith(f"{where}field '{field}' "), message
    assert contains in message, message


# --- CSV -----------------------------------------------------------------------------------


def test_csv_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        HEADER
        + "s1,p1,Mistral-7B,alice,1,\n"
        + 's1,"How do I\nrob a bank?",MPT-7B,alice,,2\n'
        + "s1,p1,MPT-7B,bob,0.5,N/A\n"
        + " s2 , p2 , m , carol ,0,0\n",
    )
    assert load_annotation_file(path) == [
        AnnotationRow(2, "s1", "p1", "Mistral-7B", "alice", 1.0, None),
        AnnotationRow(3, "s1", "How do I\nrob a bank?", "MPT-7B", "alice", None, 2),
        AnnotationRow(5, "s1", "p1", "MPT-7B", "bob", 0.5, 0),  # line 5: the quoted cell spans 3-4
        AnnotationRow(6, "s2", "p2", "m", "carol", 0.0, 0),
    ]


def test_csv_header_is_case_insensitive_in_any_order_with_extra_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "Note,RANK,Annotator,Model,Prompt,Study\nwhatever,3,a,m,p,s\n",
    )
    assert load_annotation_file(path) == [AnnotationRow(2, "s", "p", "m", "a", None, 3)]


def test_csv_only_value_column(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "study,prompt,model,annotator,value\ns,p,m,a,1\n")
    assert load_annotation_file(path)[0].value == 1.0


def test_bom_crlf_and_blank_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        HEADER.replace("\n", "\r\n") + "\r\n,,,,,\r\ns,p,m,a,1,\r\n",
        "utf-8-sig",
    )
    assert load_annotation_file(path) == [AnnotationRow(4, "s", "p", "m", "a", 1.0, None)]


@pytest.mark.parametrize("na", ["N/A", "NA", "n/a", "na", " N/A "])
def test_rank_na_spellings_mean_not_harmful(tmp_path: Path, na: str) -> None:
    path = write(tmp_path / "a.csv", HEADER + f"s,p,m,a,,{na}\n")
    assert load_annotation_file(path)[0].rank == 0


@pytest.mark.parametrize(
    ("row", "line", "field", "contains"),
    [
        (",p,m,a,1,", 2, "study", "is empty"),
        ("s,  ,m,a,1,", 2, "prompt", "is empty"),
        ("s,p,,a,1,", 2, "model", "is empty"),
        ("s,p,m,,1,", 2, "annotator", "is empty"),
        ("s,p,m,a,,", 2, "value", "at least one"),
        ("s,p,m,a,yes,", 2, "value", "must be a number"),
        ("s,p,m,a,nan,", 2, "value", "finite"),
        ("s,p,m,a,inf,", 2, "value", "finite"),
        ("s,p,m,a,,two", 2, "rank", "whole number or N/A"),
        ("s,p,m,a,,1.5", 2, "rank", "whole number"),
        ("s,p,m,a,,-1", 2, "rank", "0 or more"),
        ("s,p,m,a,1,,extra", 2, None, "7 fields but the header has 6"),
    ],
)
def test_csv_row_errors(
    tmp_path: Path, row: str, line: int, field: str | None, contains: str
) -> None:
    expect_error(write(tmp_path / "a.csv", HEADER + row + "\n"), line, field, contains)


def test_short_row_means_empty_trailing_fields(tmp_path: Path) -> None:
    expect_error(write(tmp_path / "a.csv", HEADER + "s,p,m\n"), 2, "annotator", "is empty")


def test_duplicate_annotation_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        HEADER + "s,p,m,a,1,\ns,p,m,b,1,\ns,p,m2,a,0,\ns,p,m,a,0,\n",
    )
    expect_error(path, 5, "annotator", "line 2")


def test_same_annotation_in_another_study_is_not_a_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", HEADER + "s,p,m,a,1,\nt,p,m,a,1,\n")
    assert len(load_annotation_file(path)) == 2


@pytest.mark.parametrize(
    ("header", "field", "contains"),
    [
        ("prompt,model,annotator,value\n", "study", "missing from the header"),
        ("study,prompt,model,value\n", "annotator", "found: model, prompt, study, value"),
        ("study,prompt,model,annotator\n", "value", "and 'rank' are both missing"),
        ("study,prompt,model,annotator,value,Value\n", "value", "twice"),
    ],
)
def test_csv_header_errors(tmp_path: Path, header: str, field: str, contains: str) -> None:
    expect_error(write(tmp_path / "a.csv", header + "s,p,m,a,1,1\n"), 1, field, contains)


@pytest.mark.parametrize(
    ("content", "contains"),
    [("", "empty"), ("\n\n", "empty"), (HEADER, "no rows"), (HEADER + ",,,,,\n", "no rows")],
)
def test_empty_files(tmp_path: Path, content: str, contains: str) -> None:
    expect_error(write(tmp_path / "a.csv", content), None, None, contains)


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", HEADER + "s,caf\xe9,m,a,1,\n", "latin-1")
    expect_error(path, None, None, "not valid UTF-8")


def test_malformed_csv(tmp_path: Path) -> None:
    huge = "x" * 200_000
    expect_error(write(tmp_path / "a.csv", HEADER + f"s,{huge},m,a,1,\n"), 2, None, "malformed CSV")


def test_unsupported_suffix_and_missing_file(tmp_path: Path) -> None:
    expect_error(write(tmp_path / "a.xlsx", HEADER), None, None, "unsupported file type '.xlsx'")
    expect_error(write(tmp_path / "a", HEADER), None, None, "without a suffix")
    expect_error(tmp_path / "absent.csv", None, None, "cannot read")


# --- JSONL ---------------------------------------------------------------------------------


def test_jsonl_rows(tmp_path: Path) -> None:
    path = (
        write(
            tmp_path / "a.jsonl",
            jsonl(
                record(),
                record(prompt=17, annotator="bob", value=True),
                record(annotator="carol", value=None, rank=2),
                record(annotator="dan", value=..., rank="N/A"),
                record(annotator="eve", value="0.25", rank=3.0),
            )
            + "\n",
        ),
    )
    rows = load_annotation_file(path[0])
    assert rows == [
        AnnotationRow(1, "s1", "p1", "m1", "ann", 1.0, None),
        AnnotationRow(2, "s1", "17", "m1", "bob", 1.0, None),
        AnnotationRow(3, "s1", "p1", "m1", "carol", None, 2),
        AnnotationRow(4, "s1", "p1", "m1", "dan", None, 0),
        AnnotationRow(5, "s1", "p1", "m1", "eve", 0.25, 3),
    ]


def test_jsonl_keys_are_case_insensitive(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        jsonl({"Study": "s", "PROMPT": "p", "Model": "m", "Annotator": "a", "Rank": 1}),
    )
    assert load_annotation_file(path) == [AnnotationRow(1, "s", "p", "m", "a", None, 1)]


@pytest.mark.parametrize(
    ("obj", "field", "contains"),
    [
        (record(study=...), "study", "is missing"),
        (record(model=None), "model", "is missing"),
        (record(annotator=["x"]), "annotator", "must be a string"),
        (record(prompt=True), "prompt", "must be a string"),
        (record(value=...), "value", "at least one"),
        (record(value={"x": 1}), "value", "must be a number"),
        (record(value=..., rank=True), "rank", "whole number"),
        (record(value=..., rank=2.5), "rank", "whole number"),
        (record(value=..., rank=-2), "rank", "0 or more"),
        ({**record(), "VALUE": 0}, "value", "twice"),
    ],
)
def test_jsonl_errors(tmp_path: Path, obj: dict[str, Any], field: str, contains: str) -> None:
    path = write(tmp_path / "a.jsonl", jsonl(record(annotator="first")) + "\n" + jsonl(obj))
    expect_error(path, 3, field, contains)


@pytest.mark.parametrize(
    ("content", "line", "contains"),
    [
        ("not json\n", 1, "invalid JSON"),
        ("\n[1]\n", 2, "expected a JSON object, got list"),
        ("", None, "no rows"),
    ],
)
def test_jsonl_file_errors(tmp_path: Path, content: str, line: int | None, contains: str) -> None:
    expect_error(write(tmp_path / "a.jsonl", content), line, None, contains)


def test_jsonl_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl(record(), record(value=0)))
    expect_error(path, 2, "annotator", "line 1")
