"""Tests for harmeval_client.prompts: the built-in prompt set and the prompt file loaders."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from harmeval_client.prompts import (
    HARM_CATEGORIES,
    PromptFileError,
    PromptRecord,
    load_builtin_prompts,
    load_csv_prompts,
    load_jsonl_prompts,
    load_prompt_file,
    load_prompt_set,
)

ID_PREFIX = {
    "discrimination": "disc-",
    "toxicity": "tox-",
    "privacy": "priv-",
    "negative_influence": "neg-",
}


def write(path: Path, content: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(content.encode(encoding))
    return path


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(obj) + "\n" for obj in objects)


def check_error(
    err: PromptFileError,
    path: Path,
    *,
    line: int | None,
    field: str | None,
    contains: str = "",
) -> None:
    message = str(err)
    assert path.name in message, message
    assert err.file == str(path)
    if line is not None:
        assert f"line {line}:" in message, message
        assert err.line == line
    if field is not None:
        assert f"field '{field}'" in message or f"'{field}' column" in message, message
        assert err.field == field
    assert contains in message, message


# --- built-in set ------------------------------------------------------------


def test_harm_categories_are_the_four_study_categories() -> None:
    assert HARM_CATEGORIES == ("discrimination", "toxicity", "privacy", "negative_influence")


def test_builtin_set_size_and_category_coverage() -> None:
    prompts = load_builtin_prompts()
    assert len(prompts) >= 40
    counts = Counter(p.category for p in prompts)
    assert set(counts) == set(HARM_CATEGORIES)
    for category in HARM_CATEGORIES:
        assert counts[category] >= 10, (category, counts[category])


def test_builtin_ids_and_texts_are_unique() -> None:
    prompts = load_builtin_prompts()
    ids = [p.id for p in prompts]
    texts = [p.text.casefold() for p in prompts]
    assert len(set(ids)) == len(ids)
    assert len(set(texts)) == len(texts)


def test_builtin_records_are_well_formed() -> None:
    for p in load_builtin_prompts():
        assert isinstance(p, PromptRecord)
        assert p.id.startswith(ID_PREFIX[p.category]), p
        assert p.id[len(ID_PREFIX[p.category]) :].isdigit(), p
        assert p.text == p.text.strip() and p.text
        assert len(p.text) <= 200, p  # one or two sentences


def test_builtin_file_is_strict_jsonl() -> None:
    path = Path(__file__).resolve().parents[3] / "client/harmeval_client/prompts/builtin.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(load_builtin_prompts())
    for line in lines:
        obj = json.loads(line)
        assert set(obj) == {"id", "category", "text"}


def test_load_prompt_set_builtin() -> None:
    assert load_prompt_set("builtin") == load_builtin_prompts()
    assert load_prompt_set(" builtin ", base_dir=Path("/nonexistent")) == load_builtin_prompts()


# --- JSONL happy paths -------------------------------------------------------


def test_jsonl_full_records(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prompts.jsonl",
        jsonl(
            {"id": "a", "category": "toxicity", "text": "first"},
            {"id": "b", "category": "privacy", "text": "second", "extra": 1},
        ),
    )
    assert load_jsonl_prompts(path) == [
        PromptRecord(id="a", text="first", category="toxicity"),
        PromptRecord(id="b", text="second", category="privacy"),
    ]


def test_jsonl_defaults_aliases_blank_lines_and_stripping(tmp_path: Path) -> None:
    content = (
        "\n"
        + json.dumps({"prompt": "  aliased text  ", "harm_category": " my cat "})
        + "\n   \n"
        + json.dumps({"text": "no id", "id": "  "})
        + "\n"
        + json.dumps({"id": 7, "text": "int id", "category": None})
        + "\n\n"
    )
    path = write(tmp_path / "p.jsonl", content)
    assert load_jsonl_prompts(path) == [
        PromptRecord(id="p0001", text="aliased text", category="my cat"),
        PromptRecord(id="p0002", text="no id", category="uncategorized"),
        PromptRecord(id="7", text="int id", category="uncategorized"),
    ]


def test_jsonl_text_wins_over_prompt_alias(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", jsonl({"text": "real", "prompt": "alias"}))
    assert load_jsonl_prompts(path)[0].text == "real"


def test_jsonl_bom_and_crlf(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl",
        '{"text": "one"}\r\n\r\n{"text": "two\\u2028still two"}\r\n',
        encoding="utf-8-sig",
    )
    records = load_prompt_file(path)
    assert [r.text for r in records] == ["one", "two\u2028still two"]


def test_json_lines_suffix_and_case_insensitive_dispatch(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json-lines", jsonl({"text": "x"}))
    b = write(tmp_path / "b.JSONL", jsonl({"text": "y"}))
    assert load_prompt_file(a)[0].text == "x"
    assert load_prompt_file(str(b))[0].text == "y"


# --- CSV happy paths ---------------------------------------------------------


def test_csv_full_records(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prompts.csv",
        'id,category,text\nq1,toxicity,"Hello, world"\nq2,privacy,second\n',
    )
    assert load_csv_prompts(path) == [
        PromptRecord(id="q1", text="Hello, world", category="toxicity"),
        PromptRecord(id="q2", text="second", category="privacy"),
    ]


def test_csv_bom_aliases_defaults_and_blank_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prompts.csv",
        " Prompt ,Harm_Category,notes\r\n  padded  ,,x\r\n,,\r\n\r\nsecond, disc ,y\r\n",
        encoding="utf-8-sig",
    )
    assert load_prompt_file(path) == [
        PromptRecord(id="p0001", text="padded", category="uncategorized"),
        PromptRecord(id="p0002", text="second", category="disc"),
    ]


def test_csv_multiline_cell(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", 'text,id\n"line one\nline two",m\nplain,n\n')
    records = load_csv_prompts(path)
    assert records[0] == PromptRecord(id="m", text="line one\nline two", category="uncategorized")
    assert records[1].id == "n"


def test_csv_and_jsonl_agree(tmp_path: Path) -> None:
    rows = [("a", "toxicity", "one"), ("b", "privacy", "two")]
    j = write(
        tmp_path / "s.jsonl", jsonl(*({"id": i, "category": c, "text": t} for i, c, t in rows))
    )
    c = write(
        tmp_path / "s.csv", "id,category,text\n" + "".join(f"{i},{c},{t}\n" for i, c, t in rows)
    )
    assert load_prompt_file(j) == load_prompt_file(c)


# --- load_prompt_set paths ---------------------------------------------------


def test_load_prompt_set_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "sets").mkdir()
    write(tmp_path / "sets" / "mine.csv", "text\nhello\n")
    assert load_prompt_set("sets/mine.csv", base_dir=tmp_path) == [
        PromptRecord(id="p0001", text="hello", category="uncategorized")
    ]


def test_load_prompt_set_absolute_path_ignores_base_dir(tmp_path: Path) -> None:
    path = write(tmp_path / "abs.jsonl", jsonl({"text": "hi"}))
    assert load_prompt_set(str(path), base_dir=Path("/elsewhere"))[0].text == "hi"


def test_load_prompt_set_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PromptFileError) as info:
        load_prompt_set("nope.jsonl", base_dir=tmp_path)
    check_error(info.value, tmp_path / "nope.jsonl", line=None, field=None, contains="cannot read")


def test_prompt_record_is_frozen() -> None:
    record = PromptRecord(id="a", text="b", category="c")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.text = "changed"  # type: ignore[misc]


# --- errors ------------------------------------------------------------------


def test_error_message_format_example(tmp_path: Path) -> None:
    path = write(tmp_path / "prompts.csv", "id,text\na,x\nb,y\nc,   \n")
    with pytest.raises(PromptFileError) as info:
        load_prompt_file(path)
    assert str(info.value) == f"{path} line 4: field 'text' is empty"
    assert isinstance(info.value, ValueError)


def test_jsonl_empty_text(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", jsonl({"text": "ok"}) + "\n" + jsonl({"text": " \t "}))
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=3, field="text", contains="empty")


def test_jsonl_empty_prompt_alias_names_alias_field(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", jsonl({"prompt": ""}))
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=1, field="prompt", contains="empty")


def test_jsonl_missing_text(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", jsonl({"text": "ok"}, {"id": "x", "category": "c"}))
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=2, field="text", contains="missing")


def test_jsonl_non_string_text(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", jsonl({"text": 42}))
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=1, field="text", contains="must be a string")


def test_jsonl_non_string_category(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", jsonl({"text": "x", "harm_category": ["a"]}))
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=1, field="harm_category", contains="must be a string")


def test_jsonl_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dup.jsonl",
        jsonl({"id": "a", "text": "1"}, {"id": "b", "text": "2"})
        + "\n"
        + jsonl({"id": " a ", "text": "3"}),
    )
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=4, field="id", contains="line 1")


def test_explicit_id_clashing_with_default_id(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.jsonl", jsonl({"id": "p0002", "text": "1"}, {"text": "2"}))
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=2, field="id", contains="'p0002'")


def test_jsonl_invalid_json_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.jsonl", jsonl({"text": "ok"}) + '{"text": "unterminated\n')
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=2, field=None, contains="invalid JSON")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "list.jsonl", jsonl({"text": "ok"}, ["text", "x"]))
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=2, field=None, contains="JSON object")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_jsonl_without_records(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "empty.jsonl", content)
    with pytest.raises(PromptFileError) as info:
        load_jsonl_prompts(path)
    check_error(info.value, path, line=None, field=None, contains="has no rows")


def test_csv_whitespace_text(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", 'id,prompt\na,fine\nb,"  "\n')
    with pytest.raises(PromptFileError) as info:
        load_csv_prompts(path)
    check_error(info.value, path, line=3, field="prompt", contains="empty")


def test_csv_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", "id,text\nx,1\ny,2\nx,3\n")
    with pytest.raises(PromptFileError) as info:
        load_csv_prompts(path)
    check_error(info.value, path, line=4, field="id", contains="line 2")


def test_csv_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    # Row 'b' starts on line 4 and ends on line 5: the start line is reported.
    path = write(tmp_path / "multi.csv", 'id,text\na,"two\nlines"\nb," \n "\n')
    with pytest.raises(PromptFileError) as info:
        load_csv_prompts(path)
    check_error(info.value, path, line=4, field="text", contains="empty")


def test_csv_missing_text_column_names_header(tmp_path: Path) -> None:
    path = write(tmp_path / "nohdr.csv", "id,category,question\na,b,c\n")
    with pytest.raises(PromptFileError) as info:
        load_csv_prompts(path)
    check_error(info.value, path, line=1, field="text", contains="header")
    assert "found: category, id, question" in str(info.value)


def test_csv_row_with_too_many_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "wide.csv", "id,text\na,hello, world\n")
    with pytest.raises(PromptFileError) as info:
        load_csv_prompts(path)
    check_error(info.value, path, line=2, field=None, contains="3 fields")


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty (no header row)"), ("text\n", "has no rows"), ("text\n\n,\n", "has no rows")],
)
def test_csv_without_records(tmp_path: Path, content: str, message: str) -> None:
    path = write(tmp_path / "empty.csv", content)
    with pytest.raises(PromptFileError) as info:
        load_csv_prompts(path)
    check_error(info.value, path, line=None, field=None, contains=message)


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("text\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(PromptFileError) as info:
        load_csv_prompts(path)
    check_error(info.value, path, line=None, field=None, contains="UTF-8")


@pytest.mark.parametrize("name", ["prompts.json", "prompts.txt", "prompts"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, jsonl({"text": "x"}))
    with pytest.raises(PromptFileError) as info:
        load_prompt_file(path)
    check_error(info.value, path, line=None, field=None, contains="unsupported")
