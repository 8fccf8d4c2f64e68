"""Tests for harmeval_client.importers.reliability_table: the `harmeval agreement` input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harmeval_client.importers.reliability_table import (
    ReliabilityTableError,
    load_reliability_table,
)
from harmeval_client.tables import TableFileError


def write(path: Path, content: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(content.encode(encoding))
    return path


def expect_error(path: Path, line: int | None, field: str | None, contains: str) -> None:
    with pytest.raises(ReliabilityTableError) as info:
        load_reliability_table(path)
    err = info.value
    assert isinstance(err, TableFileError)
    assert (err.file, err.line, err.field) == (str(path), line, field), str(err)
    where = f"{path} line {line}: " if line is not None else f"{path}: "
    if field is not None:
        where += f"field '{field}' "
    assert str(err).startswith(where), str(err)
    assert contains in str(err), str(err)


# --- loading -------------------------------------------------------------------------------


def test_csv_numbers_categories_and_missing(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.csv",
        "Unit,CODER,Value,note\nu1,alice,1,x\nu1,bob,,\nu2,alice, 2.5 ,\nu2,bob,harmful,\n"
        "u3,alice,N/A,\n",
    )
    assert load_reliability_table(path) == [
        ("u1", "alice", 1.0),
        ("u1", "bob", None),
        ("u2", "alice", 2.5),
        ("u2", "bob", "harmful"),
        ("u3", "alice", "N/A"),
    ]


def test_jsonl_values(tmp_path: Path) -> None:
    rows = [
        {"unit": "u1", "coder": "a", "value": 3},
        {"unit": 7, "coder": "a", "value": "3"},
        {"unit": "u1", "coder": "b", "value": None},
        {"Unit": "u2", "Coder": "b", "Value": "no"},
    ]
    path = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert load_reliability_table(path) == [
        ("u1", "a", 3.0),
        ("7", "a", 3.0),
        ("u1", "b", None),
        ("u2", "b", "no"),
    ]


@pytest.mark.parametrize(
    ("rows", "line", "field", "contains"),
    [
        ("u1,a,1\nu1,a,2\n", 3, "coder", "first on line 2"),
        ("u1,a,1\n,a,2\n", 3, "unit", "is empty"),
        ("u1,a,1\nu2, ,2\n", 3, "coder", "is empty"),
        ("u1,a,nan\n", 2, "value", "finite"),
        ("u1,a,-inf\n", 2, "value", "finite"),
        ("u1,a,1,2\n", 2, None, "4 fields but the header has 3"),
    ],
)
def test_csv_errors(tmp_path: Path, rows: str, line: int, field: str | None, contains: str) -> None:
    expect_error(write(tmp_path / "t.csv", "unit,coder,value\n" + rows), line, field, contains)


def test_duplicate_spanning_multiline_cells_names_start_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", 'unit,coder,value\n"u\n1",a,1\nx,a,1\n"u\n1",a,2\n')
    expect_error(path, 5, "coder", "first on line 2")


@pytest.mark.parametrize(
    ("header", "field"),
    [("unit,coder\n", "value"), ("coder,value\n", "unit"), ("unit,value\n", "coder")],
)
def test_missing_columns(tmp_path: Path, header: str, field: str) -> None:
    expect_error(write(tmp_path / "t.csv", header + "a,b\n"), 1, field, "missing from the header")


@pytest.mark.parametrize(
    ("obj", "field", "contains"),
    [
        ({"unit": "u", "coder": "c"}, "value", "use null"),
        ({"unit": "u", "coder": "c", "value": True}, "value", "got True"),
        ({"unit": "u", "coder": "c", "value": [1]}, "value", "got list"),
        ({"unit": "u", "coder": "c", "value": float("nan")}, "value", "finite"),
        ({"unit": "u", "value": 1}, "coder", "is missing"),
        ({"unit": 1.5, "coder": "c", "value": 1}, "unit", "must be a string"),
    ],
)
def test_jsonl_errors(tmp_path: Path, obj: dict[str, object], field: str, contains: str) -> None:
    path = write(
        tmp_path / "t.jsonl", '{"unit": "x", "coder": "y", "value": 1}\n' + json.dumps(obj)
    )
    expect_error(path, 2, field, contains)


@pytest.mark.parametrize(
    ("name", "content", "contains"),
    [
        ("t.csv", "", "empty"),
        ("t.csv", "unit,coder,value\n", "no rows"),
        ("t.jsonl", "\n", "no rows"),
        ("t.txt", "unit,coder,value\n", "unsupported"),
    ],
)
def test_file_errors(tmp_path: Path, name: str, content: str, contains: str) -> None:
    expect_error(write(tmp_path / name, content), None, None, contains)
