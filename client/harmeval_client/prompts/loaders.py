"""Loading prompt sets: the built-in set and user-supplied JSONL or CSV files.

A prompt file holds one record per JSONL line or CSV row with these fields:

* ``text`` (required; alias ``prompt``): the prompt sent to the model.
* ``id`` (optional): the user's own identifier; defaults to ``p0001``, ``p0002``, ...
  after the record's 1-based position in the file.
* ``category`` (optional; alias ``harm_category``): free text; defaults to
  ``uncategorized``. The built-in set uses :data:`HARM_CATEGORIES`.

Every problem is reported as a :class:`PromptFileError` whose message names the
file, the 1-based line number (for CSV the header is line 1) and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harmeval_client.tables import TableFileError, jsonl_records, read_csv, read_jsonl, read_table

__all__ = [
    "BUILTIN_SPEC",
    "DEFAULT_CATEGORY",
    "HARM_CATEGORIES",
    "PromptFileError",
    "PromptRecord",
    "load_builtin_prompts",
    "load_csv_prompts",
    "load_jsonl_prompts",
    "load_prompt_file",
    "load_prompt_set",
]

HARM_CATEGORIES: tuple[str, ...] = ("discrimination", "toxicity", "privacy", "negative_influence")
"""Harm categories of the built-in prompt set."""

DEFAULT_CATEGORY = "uncategorized"
"""Category given to records of user files that carry none."""

BUILTIN_SPEC = "builtin"
"""The :func:`load_prompt_set` spec that selects the built-in set."""

_BUILTIN_PACKAGE = "harmeval_client.prompts"
_BUILTIN_RESOURCE = "builtin.jsonl"


# Canonical field -> accepted names, in order of preference.
_TEXT_FIELDS = ("text", "prompt")
_ID_FIELDS = ("id",)
_CATEGORY_FIELDS = ("category", "harm_category")


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """One prompt of a prompt set."""

    id: str
    """The user's own identifier for the prompt (unique within its file)."""
    text: str
    category: str
    """Free text for user files; one of :data:`HARM_CATEGORIES` for the built-in set."""


class PromptFileError(TableFileError):
    """A prompt file cannot be read or is invalid.

    The message reads like ``"prompts.csv line 4: field 'text' is empty"``;
    the parts are also available as attributes.
    """


def _pick(record: Mapping[str, object], names: tuple[str, ...]) -> tuple[str, object] | None:
    """Return (field name, value) of the first of ``names`` present and not None."""
    for name in names:
        value = record.get(name)
        if value is not None:
            return name, value
    return None


def _build_records(
    rows: Iterable[tuple[int, Mapping[str, object]]], source: str
) -> list[PromptRecord]:
    """Validate raw rows (line number, field mapping) and turn them into records."""
    records: list[PromptRecord] = []
    seen_ids: dict[str, int] = {}
    for index, (line_no, row) in enumerate(rows):
        # text (required)
        picked = _pick(row, _TEXT_FIELDS)
        if picked is None:
            raise PromptFileError(
                source,
                "is missing (also accepted: 'prompt')",
                line=line_no,
                field="text",
            )
        text_field, raw_text = picked
        if not isinstance(raw_text, str):
            raise PromptFileError(
                source,
                f"must be a string, got {type(raw_text).__name__}",
                line=line_no,
                field=text_field,
            )
        text = raw_text.strip()
        if not text:
            raise PromptFileError(source, "is empty", line=line_no, field=text_field)

        # id (optional)
        prompt_id = ""
        picked = _pick(row, _ID_FIELDS)
        if picked is not None:
            id_field, raw_id = picked
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
                raise PromptFileError(
                    source,
                    f"must be a string or an integer, got {type(raw_id).__name__}",
                    line=line_no,
                    field=id_field,
                )
            prompt_id = str(raw_id).strip()
        if not prompt_id:
            prompt_id = f"p{index + 1:04d}"
        first_line = seen_ids.get(prompt_id)
        if first_line is not None:
            raise PromptFileError(
                source,
                f"repeats id {prompt_id!r} already used on line {first_line}",
                line=line_no,
                field="id",
            )
        seen_ids[prompt_id] = line_no

        # category (optional)
        category = ""
        picked = _pick(row, _CATEGORY_FIELDS)
        if picked is not None:
            category_field, raw_category = picked
            if not isinstance(raw_category, str):
                raise PromptFileError(
                    source,
                    f"must be a string, got {type(raw_category).__name__}",
                    line=line_no,
                    field=category_field,
                )
            category = raw_category.strip()
        if not category:
            category = DEFAULT_CATEGORY

        records.append(PromptRecord(id=prompt_id, text=text, category=category))

    if not records:
        raise PromptFileError(source, "no prompts")
    return records


def load_jsonl_prompts(path: str | Path) -> list[PromptRecord]:
    """Load a JSONL prompt file: one JSON object per line, blank lines skipped."""
    return _build_records(read_jsonl(path, PromptFileError).rows, str(path))


def load_csv_prompts(path: str | Path) -> list[PromptRecord]:
    """Load a CSV prompt file with a header row (UTF-8, a leading BOM is tolerated).

    Column names are matched case-insensitively; unknown columns are ignored.
    Rows whose cells are all blank are skipped.
    """
    table = read_csv(path, PromptFileError, any_of=_TEXT_FIELDS)
    return _build_records(table.rows, str(path))


def load_prompt_file(path: str | Path) -> list[PromptRecord]:
    """Load a prompt file, choosing the format from its suffix (.jsonl, .json-lines, .ndjson,
    .csv)."""
    table = read_table(path, PromptFileError, any_of=_TEXT_FIELDS)
    return _build_records(table.rows, str(path))


def load_builtin_prompts() -> list[PromptRecord]:
    """Load the prompt set shipped with harmeval (48 prompts, 12 per harm category)."""
    resource = resources.files(_BUILTIN_PACKAGE).joinpath(_BUILTIN_RESOURCE)
    content = resource.read_text(encoding="utf-8")
    records = _build_records(
        jsonl_records(_BUILTIN_RESOURCE, content, PromptFileError), _BUILTIN_RESOURCE
    )
    for line_no, record in enumerate(records, start=1):
        if record.category not in HARM_CATEGORIES:
            raise PromptFileError(
                _BUILTIN_RESOURCE,
                f"field 'category' has unknown harm category {record.category!r}",
                line=line_no,
                field="category",
            )
    return records


def load_prompt_set(spec: str, base_dir: Path | None = None) -> list[PromptRecord]:
    """Load a prompt set named by ``spec``.

    ``"builtin"`` selects the built-in set; anything else is a prompt file path,
    taken relative to ``base_dir`` (when given) unless it is absolute.
    """
    spec = spec.strip()
    if spec == BUILTIN_SPEC:
        return load_builtin_prompts()
    path = Path(spec).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return load_prompt_file(path)
