"""Parser for the released data of the seed ranking study ("LLM-Harm", Atil et al. 2025).

Layout of the directory (``psunlpgroup/LLM-Harm``)::

    raw_submissions/output_Group_<N>.csv   17 student groups: Prompt, 3 model answers, Ranking
    raw_submissions/expert_annotations.csv  85 prompts re-ranked by an expert
    <judge>_predictions.csv                 one file per LLM judge: preds, extracted_pred, prompt

Everything is parsed into plain records (:class:`LlmHarmData`); nothing touches a database.
The parser never raises on bad *content*: every row it cannot use, or can only use after a
decision worth knowing about, becomes a :class:`Problem` naming file, 1-based physical line
(header = line 1; a quoted cell spanning several lines reports the line the row starts on),
field, reason and the raw value. Reasons are the fixed ``REASON_*`` strings so callers can
count them.

Conventions of the output:

* ``rank`` 0 = N/A (not harmful); the m harmful answers of a row get 1..m with m = most
  harmful, whatever numbers the annotator used (``1,3,N/A`` becomes ``1,2,0``).
* Units are (prompt key, model). A prompt's key is :func:`normalise_prompt` of its text; the
  same text is how judge and expert rows find their human prompt.
* Quirk of the real data: 6 prompt texts appear in two groups with *different* model answers
  (the answers were generated twice). Merging them would put rankings of different texts into
  one unit, so the later occurrence becomes its own prompt with key
  ``"<normalised text>#group-<N>"`` (reported as :data:`REASON_DUPLICATE_PROMPT`). Judge rows
  for such a prompt are told apart by the answer columns some judge files carry (see
  :func:`load_llm_harm`); where nothing tells them apart the row is reported, not guessed.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "EXPERT_CODER",
    "JUDGE_CODERS",
    "MODELS",
    "REASONS",
    "REASON_AMBIGUOUS_PROMPT",
    "REASON_ANSWERS_DIFFER",
    "REASON_DUPLICATE_PROMPT",
    "REASON_DUPLICATE_ROW",
    "REASON_EMPTY",
    "REASON_EXTRACTED_DISAGREES",
    "REASON_MALFORMED_CSV",
    "REASON_MISSING_COLUMN",
    "REASON_OUT_OF_RANGE",
    "REASON_TIE",
    "REASON_UNMATCHED_PROMPT",
    "REASON_UNRECOGNISED_VALUE",
    "REASON_UNSCORABLE",
    "REASON_WRONG_COUNT",
    "REVERSED_GROUPS",
    "STUDENT_CODER",
    "HarmAnswer",
    "HarmLabel",
    "HarmPrompt",
    "LlmHarmData",
    "Problem",
    "load_llm_harm",
    "normalise_prompt",
    "parse_judge_output",
    "parse_ranking",
]

MODELS: tuple[str, str, str] = ("Mistral-7B", "MPT-7B", "StableLM-alpha-7B")
"""The three small models, in ranking order; the judge files call them Content A, B, C."""

STUDENT_CODER = "students"
EXPERT_CODER = "expert"
JUDGE_CODERS: dict[str, str] = {"gpt4o": "gpt-4o", "sonnet": "sonnet", "llama": "llama"}
"""``<stem>_predictions.csv`` stem -> coder name. Unknown stems keep the stem as coder name."""

REVERSED_GROUPS: frozenset[int] = frozenset({10})
"""Groups that ranked on the reverse scale (1 = most harmful); see :func:`parse_ranking`.

Group 10 is flipped because the data set's README and the authors' ``preprocess.py`` do so
(their 1<->3 swap followed by dense renumbering gives the same result as our flip). Caveat
measured on the release: flipped, group 10 agrees with GPT-4o, Sonnet and the expert on the
order of harmful pairs *less* than any other group (8/24, 13/40, 1/4 pairs) and unflipped about
as well as the others (16/24, 27/40, 3/4); pass ``reversed_groups=()`` to study that."""

# Reasons reported in Problem.reason (fixed strings so callers can count by reason).
REASON_EMPTY = "empty value"
REASON_WRONG_COUNT = "wrong number of values (expected 3)"
REASON_UNRECOGNISED_VALUE = "unrecognised value"
REASON_OUT_OF_RANGE = "rank out of range (1-3)"
REASON_TIE = "tie among harmful answers"
REASON_UNSCORABLE = "unscorable judge output"
REASON_EXTRACTED_DISAGREES = "extracted_pred disagrees with preds"
REASON_UNMATCHED_PROMPT = "prompt not found in the human submissions"
REASON_AMBIGUOUS_PROMPT = "prompt matches several human prompts with different answers"
REASON_DUPLICATE_PROMPT = "same prompt with different answers in an earlier group"
REASON_DUPLICATE_ROW = "duplicate row for the same prompt and annotator (first kept)"
REASON_ANSWERS_DIFFER = "answers differ from the human submission"
REASON_MISSING_COLUMN = "missing column"
REASON_MALFORMED_CSV = "malformed CSV"

REASONS: tuple[str, ...] = (
    REASON_EMPTY,
    REASON_WRONG_COUNT,
    REASON_UNRECOGNISED_VALUE,
    REASON_OUT_OF_RANGE,
    REASON_TIE,
    REASON_UNSCORABLE,
    REASON_EXTRACTED_DISAGREES,
    REASON_UNMATCHED_PROMPT,
    REASON_AMBIGUOUS_PROMPT,
    REASON_DUPLICATE_PROMPT,
    REASON_DUPLICATE_ROW,
    REASON_ANSWERS_DIFFER,
    REASON_MISSING_COLUMN,
    REASON_MALFORMED_CSV,
)

Ranking = tuple[int, int, int]

_GROUP_FILE = re.compile(r"output_group_(\d+)\.csv", re.IGNORECASE)
_EXPERT_FILE = "expert_annotations.csv"
_JUDGE_SUFFIX = "_predictions.csv"
_SUBDIR = "raw_submissions"

# Characters annotators wrapped rankings and single values in: "[3, 2, N/A]", "\"2,1,N/A\"",
# trailing commas ("3,N/A,N/A,"). Stripped from both ends; never from the middle.
_WRAPPERS = " \t\r\n\"'`[](){}*"
_NA = re.compile(r"n[\s/.\\-]*a+\.?", re.IGNORECASE)  # N/A, NA, n/a, N.A., and the typo N/aA
_INT = re.compile(r"[+-]?\d+")
# One line of judge output, e.g. "Content A: 3", "**Content B:** [N/A]", "Content C - 1".
_JUDGE_LINE = re.compile(r"^\W*content\s+([abc])\b\W*?[:\-]\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_JUDGE_VALUE = re.compile(r"[\s\"'`\[\](){}*]*(n\s*/?\s*a\b|\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class HarmPrompt:
    text: str
    """The prompt as written in the first group file that has it."""
    key: str
    """:func:`normalise_prompt` of ``text`` (plus ``#group-<N>`` for a repeated prompt whose
    answers differ); the unit identifier every answer and label refers to."""


@dataclass(frozen=True)
class HarmAnswer:
    prompt_key: str
    model: str
    text: str


@dataclass(frozen=True)
class HarmLabel:
    prompt_key: str
    model: str
    coder: str
    """``students``, ``expert``, or a judge (``gpt-4o``, ``sonnet``, ``llama``)."""
    annotator: str
    """``group-<N>`` for students; the coder name otherwise."""
    rank: int
    """0 = N/A (not harmful); 1..m for the m harmful answers of the row, m = most harmful."""


@dataclass(frozen=True)
class Problem:
    file: str
    """Path relative to the loaded directory, e.g. ``raw_submissions/output_Group_3.csv``."""
    line: int
    """1-based physical line where the row starts (header = 1)."""
    field: str
    """Column header as spelled in the file (``Ranking``, ``expert_ranking``, ``preds``...)."""
    reason: str
    """One of :data:`REASONS`."""
    raw: str
    """The offending raw value."""


@dataclass
class LlmHarmData:
    prompts: list[HarmPrompt]
    answers: list[HarmAnswer]
    labels: list[HarmLabel]
    problems: list[Problem]

    def labels_per_coder(self) -> dict[str, int]:
        """Number of labels (one per (prompt, model) cell) for each coder."""
        return dict(Counter(label.coder for label in self.labels))

    def problems_by_reason(self) -> dict[str, int]:
        return dict(Counter(problem.reason for problem in self.problems))


def normalise_prompt(text: str) -> str:
    """Case-insensitive, whitespace-collapsed form of a prompt.

    Why: the judge files store the prompts lower-cased, and spreadsheets added or dropped
    surrounding/inner whitespace; this is the matching rule the study's authors used.
    """
    return " ".join(text.split()).casefold()


# --- rankings ----------------------------------------------------------------------------


def _dense(ranks: Sequence[int]) -> Ranking | str:
    """Renumber the non-zero ranks densely to 1..m, keeping their order; ties are refused.

    Why dense: annotators sometimes skipped a number (``1,3,N/A``); only the order among
    harmful answers carries meaning, so gaps are closed rather than reported.
    """
    harmful = [rank for rank in ranks if rank != 0]
    if len(set(harmful)) != len(harmful):
        return REASON_TIE
    order = sorted(harmful)
    a, b, c = (0 if rank == 0 else order.index(rank) + 1 for rank in ranks)
    return (a, b, c)


def _reverse(ranks: Ranking) -> Ranking:
    """Flip a dense ranking's harmful part: rank r of m harmful answers becomes m + 1 - r.

    N/A (0) stays 0; only the order *among* harmful answers is reversed, because the reverse
    scale changed which end of the harmful list is "most harmful", not which answers are
    harmful. E.g. reversed ``2,1,N/A`` (MPT most harmful) becomes ``1,2,0``.
    """
    m = sum(1 for rank in ranks if rank)
    a, b, c = (m + 1 - rank if rank else 0 for rank in ranks)
    return (a, b, c)


def _value(token: str) -> int | str:
    """One ranking value: 0 for N/A, the integer for a number, or a reason string."""
    token = token.strip(_WRAPPERS)
    if not token:
        return REASON_EMPTY
    if _NA.fullmatch(token):
        return 0
    if _INT.fullmatch(token):
        number = int(token)
        # 0 is not accepted as "N/A": the study's instructions never used it, so a 0 is more
        # likely a slip than a convention; reporting it costs one row, guessing could cost more.
        return number if 1 <= number <= len(MODELS) else REASON_OUT_OF_RANGE
    return REASON_UNRECOGNISED_VALUE


def parse_ranking(raw: str, *, reverse: bool = False) -> Ranking | str:
    """Parse a human ranking cell such as ``"[3, N/A, 2]"`` into a dense triple.

    Accepted spelling: values separated by ``,`` or ``;``; each value 1-3 or N/A in any of the
    variants seen (``N/A``, ``NA``, ``n/a``, ``N/aA``), with spaces, quotes and brackets around
    the list or a value, and trailing commas. The result has 0 for N/A and 1..m for the m
    harmful answers (m = most harmful), renumbered densely.

    ``reverse=True`` is for annotators who used 1 = most harmful: after dense renumbering the
    harmful answers' order is reversed (r -> m + 1 - r); N/A answers are untouched.

    Returns a reason string (one of :data:`REASONS`) instead of a triple when the value cannot
    be repaired without guessing: empty, not exactly 3 values, an unrecognised or out-of-range
    value, or a tie among harmful answers.
    """
    text = raw.strip(_WRAPPERS + ",;")
    if not text:
        return REASON_EMPTY
    tokens = re.split(r"[,;]", text)
    if len(tokens) != len(MODELS):
        return REASON_WRONG_COUNT
    values: list[int] = []
    for token in tokens:
        value = _value(token)
        if isinstance(value, str):
            return value
        values.append(value)
    ranks = _dense(values)
    if isinstance(ranks, str) or not reverse:
        return ranks
    return _reverse(ranks)


def parse_judge_output(text: str) -> Ranking | str:
    """Parse a judge's raw reply (``Content A: 3`` / ``Content B: N/A`` / ``Content C: 1``).

    The judges used the human scale (3 or the highest number = most harmful among the harmful
    ones), so the result is renumbered densely like :func:`parse_ranking`. Lines may come in
    any order (llama sometimes answered A, C, B) and carry decoration (``**``, brackets,
    explanations after the value); lines whose text after the colon does not start with a
    value are prose and skipped. The first value line for each letter counts; a later one giving
    the same letter a *different* value makes the reply unscorable, because we cannot tell
    which one the judge meant. A missing letter or value is unscorable too; a tie is
    :data:`REASON_TIE` (the released ``extracted_pred`` silently broke ties by list order).
    """
    found: dict[str, int] = {}
    for letter, rest in _JUDGE_LINE.findall(text):
        match = _JUDGE_VALUE.match(rest)
        if match is None:
            continue  # prose about the content ("Content A: this answer..."), not a verdict
        token = match.group(1)
        value = 0 if token[0] in "nN" else int(token)
        if not 0 <= value <= len(MODELS):
            return REASON_UNSCORABLE
        key = letter.upper()
        if key in found and found[key] != value:
            return REASON_UNSCORABLE
        found.setdefault(key, value)
    if sorted(found) != ["A", "B", "C"]:
        return REASON_UNSCORABLE
    return _dense([found["A"], found["B"], found["C"]])


def _parse_extracted(raw: str) -> Ranking | None:
    """The released ``extracted_pred`` (``"2,1,0"``); None for ``-1,-1,-1`` or garbage."""
    parts = raw.strip(_WRAPPERS).split(",")
    if len(parts) != len(MODELS) or not all(_INT.fullmatch(p.strip()) for p in parts):
        return None
    a, b, c = (int(p) for p in parts)
    if min(a, b, c) < 0:
        return None
    return (a, b, c)


# --- CSV reading -------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    """UTF-8 (BOM tolerated), else latin-1 for the whole file.

    Why latin-1 and not something cleverer: two group files are not UTF-8 (group 6 is Mac
    Roman, group 7 is UTF-8 with a few bytes lost), and the judge files hold the prompts and
    answers exactly as a latin-1 decode of those files gives them (mojibake included). Decoding
    the same way keeps prompt matching exact and the text identical to what the judges saw.
    latin-1 never fails, so no row is lost.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@dataclass
class _Table:
    file: str
    header: list[str]
    rows: list[tuple[int, list[str]]]
    problems: list[Problem]

    def column(self, name: str) -> int | None:
        wanted = name.casefold()
        for index, header in enumerate(self.header):
            if header.strip().casefold() == wanted:
                return index
        return None

    def model_columns(self) -> list[int] | str:
        """Columns of the three model answers (``Model 1 - Mistral-7B``...), in MODELS order,
        or the name of the first model without a column."""
        found: list[int] = []
        for model in MODELS:
            suffix = model.casefold()
            match = [i for i, h in enumerate(self.header) if h.strip().casefold().endswith(suffix)]
            if not match:
                return model
            found.append(match[0])
        return found


def _read_csv(path: Path, file: str) -> _Table:
    """Read a CSV into (start line, cells) rows; fully blank rows are skipped."""
    text = _decode(path.read_bytes())
    reader = csv.reader(io.StringIO(text, newline=""))
    table = _Table(file=file, header=[], rows=[], problems=[])
    try:
        table.header = next(reader, [])
        end_line = reader.line_num
        for cells in reader:
            # A quoted cell may span several lines: report the line the row starts on.
            start, end_line = end_line + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                table.rows.append((start, cells))
    except csv.Error as exc:
        # Keep the rows read so far: one bad quote late in a file should not hide the rest.
        table.problems.append(
            Problem(file, reader.line_num, "", REASON_MALFORMED_CSV, str(exc)),
        )
    return table


def _cell(cells: Sequence[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


def _missing(table: _Table, name: str) -> Problem:
    return Problem(table.file, 1, name, REASON_MISSING_COLUMN, ",".join(table.header))


# --- loading -----------------------------------------------------------------------------


@dataclass
class _Item:
    """A human prompt with its answers, while loading."""

    prompt: HarmPrompt
    answer_keys: tuple[str, ...]  # whitespace-collapsed answers, for comparisons


def _answer_key(answers: Sequence[str]) -> tuple[str, ...]:
    # Why whitespace only (not case): re-saved spreadsheets change line endings and trailing
    # spaces, but a different letter case means different text was shown to the annotator.
    return tuple(" ".join(answer.split()) for answer in answers)


@dataclass
class _Loader:
    root: Path
    prompts: list[HarmPrompt] = field(default_factory=list)
    answers: list[HarmAnswer] = field(default_factory=list)
    labels: list[HarmLabel] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    items: dict[str, list[_Item]] = field(default_factory=dict)  # base key -> items
    keys: set[str] = field(default_factory=set)
    labelled: set[tuple[str, str]] = field(default_factory=set)  # (prompt key, annotator)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def problem(self, table: _Table, line: int, column: str, reason: str, raw: str) -> None:
        self.problems.append(Problem(table.file, line, column, reason, raw))

    def add_labels(
        self,
        table: _Table,
        line: int,
        prompt_column: str,
        prompt_text: str,
        item: _Item,
        coder: str,
        annotator: str,
        ranks: Ranking,
    ) -> None:
        key = item.prompt.key
        if (key, annotator) in self.labelled:
            # One annotator, one value per unit: a second value would make agreement undefined.
            self.problem(table, line, prompt_column, REASON_DUPLICATE_ROW, prompt_text)
            return
        self.labelled.add((key, annotator))
        for model, rank in zip(MODELS, ranks, strict=True):
            self.labels.append(HarmLabel(key, model, coder, annotator, rank))

    # -- groups --

    def add_item(self, text: str, answers: tuple[str, ...], group: int) -> tuple[_Item, bool]:
        """The item for this prompt and these answers; True when it repeats a different one."""
        base = normalise_prompt(text)
        answer_keys = _answer_key(answers)
        same_base = self.items.setdefault(base, [])
        for item in same_base:
            if item.answer_keys == answer_keys:
                return item, False
        key = base
        if key in self.keys:
            key = f"{base}#group-{group}"
            suffix = 2
            while key in self.keys:  # same prompt twice in one group with different answers
                key = f"{base}#group-{group}-{suffix}"
                suffix += 1
        self.keys.add(key)
        item = _Item(HarmPrompt(text, key), answer_keys)
        same_base.append(item)
        self.prompts.append(item.prompt)
        for model, answer in zip(MODELS, answers, strict=True):
            self.answers.append(HarmAnswer(key, model, answer))
        return item, len(same_base) > 1

    def load_group(self, path: Path, group: int, reverse: bool) -> None:
        table = _read_csv(path, self.rel(path))
        self.problems.extend(table.problems)
        prompt_col, ranking_col = table.column("Prompt"), table.column("Ranking")
        model_cols = table.model_columns()
        if isinstance(model_cols, str):
            self.problems.append(_missing(table, model_cols))
            return
        for name, col in (("Prompt", prompt_col), ("Ranking", ranking_col)):
            if col is None:
                self.problems.append(_missing(table, name))
                return
        assert prompt_col is not None and ranking_col is not None
        prompt_name, ranking_name = table.header[prompt_col], table.header[ranking_col]
        annotator = f"group-{group}"
        for line, cells in table.rows:
            text = _cell(cells, prompt_col)
            if not text.strip():
                self.problem(table, line, prompt_name, REASON_EMPTY, text)
                continue
            answers = tuple(_cell(cells, col) for col in model_cols)
            item, repeated = self.add_item(text, answers, group)
            if repeated:
                self.problem(table, line, prompt_name, REASON_DUPLICATE_PROMPT, text)
            raw = _cell(cells, ranking_col)
            ranks = parse_ranking(raw, reverse=reverse)
            if isinstance(ranks, str):
                self.problem(table, line, ranking_name, ranks, raw)
                continue
            self.add_labels(table, line, prompt_name, text, item, STUDENT_CODER, annotator, ranks)

    # -- expert and judges --

    def match(
        self,
        table: _Table,
        line: int,
        column: str,
        text: str,
        answers: tuple[str, ...] | None,
        resolved: _Item | None = None,
    ) -> _Item | None:
        """The human item a judge/expert row refers to, or None after reporting why not.

        ``answers`` are the row's own answer columns (None or all empty where it has none);
        ``resolved`` is what an aligned sibling file's answers said for this row.
        """
        if not text.strip():
            self.problem(table, line, column, REASON_EMPTY, text)
            return None
        candidates = self.items.get(normalise_prompt(text), [])
        if not candidates:
            self.problem(table, line, column, REASON_UNMATCHED_PROMPT, text)
            return None
        if answers is not None and any(answer.strip() for answer in answers):
            keys = _answer_key(answers)
            for item in candidates:
                if item.answer_keys == keys:
                    return item
            if len(candidates) == 1:
                # The prompt is unambiguous; keep the label but say the judge saw other text.
                self.problem(table, line, column, REASON_ANSWERS_DIFFER, text)
                return candidates[0]
            self.problem(table, line, column, REASON_AMBIGUOUS_PROMPT, text)
            return None
        if len(candidates) == 1:
            return candidates[0]
        if resolved is not None and resolved in candidates:
            return resolved
        self.problem(table, line, column, REASON_AMBIGUOUS_PROMPT, text)
        return None

    def load_expert(self, path: Path) -> None:
        table = _read_csv(path, self.rel(path))
        self.problems.extend(table.problems)
        prompt_col, ranking_col = table.column("prompt"), table.column("expert_ranking")
        if prompt_col is None or ranking_col is None:
            name = "prompt" if prompt_col is None else "expert_ranking"
            self.problems.append(_missing(table, name))
            return
        prompt_name, ranking_name = table.header[prompt_col], table.header[ranking_col]
        for line, cells in table.rows:
            text = _cell(cells, prompt_col)
            item = self.match(table, line, prompt_name, text, None)
            if item is None:
                continue
            raw = _cell(cells, ranking_col)
            ranks = parse_ranking(raw)
            if isinstance(ranks, str):
                self.problem(table, line, ranking_name, ranks, raw)
                continue
            self.add_labels(table, line, prompt_name, text, item, EXPERT_CODER, EXPERT_CODER, ranks)

    def load_judges(self, paths: Sequence[Path]) -> None:
        tables = [(path, _read_csv(path, self.rel(path))) for path in paths]
        # Why a first pass: the judge files are exports of one table (same row order, same
        # prompts), and only some carry the answers shown to the judge. Where a repeated
        # prompt's row can be told apart by answers in one file, the same row of the other
        # files (checked to hold the same prompt) refers to the same item.
        aligned: dict[tuple[int, str], _Item] = {}
        for _, table in tables:
            prompt_col, model_cols = table.column("prompt"), table.model_columns()
            if prompt_col is None or isinstance(model_cols, str):
                continue
            for index, (_, cells) in enumerate(table.rows):
                text = _cell(cells, prompt_col)
                candidates = self.items.get(normalise_prompt(text), [])
                keys = _answer_key([_cell(cells, col) for col in model_cols])
                for item in candidates if len(candidates) > 1 else []:
                    if item.answer_keys == keys:
                        aligned[(index, text)] = item
        for path, table in tables:
            self.load_judge(path, table, aligned)

    def load_judge(self, path: Path, table: _Table, aligned: dict[tuple[int, str], _Item]) -> None:
        self.problems.extend(table.problems)
        stem = path.name[: -len(_JUDGE_SUFFIX)]
        coder = JUDGE_CODERS.get(stem, stem)
        prompt_col = table.column("prompt")
        preds_col, extracted_col = table.column("preds"), table.column("extracted_pred")
        if prompt_col is None or (preds_col is None and extracted_col is None):
            self.problems.append(_missing(table, "prompt" if prompt_col is None else "preds"))
            return
        model_cols = table.model_columns()
        prompt_name = table.header[prompt_col]
        for index, (line, cells) in enumerate(table.rows):
            text = _cell(cells, prompt_col)
            answers = (
                None if isinstance(model_cols, str) else tuple(_cell(cells, c) for c in model_cols)
            )
            item = self.match(table, line, prompt_name, text, answers, aligned.get((index, text)))
            if item is None:
                continue
            ranks = self.judge_ranks(table, line, cells, preds_col, extracted_col)
            if ranks is not None:
                self.add_labels(table, line, prompt_name, text, item, coder, coder, ranks)

    def judge_ranks(
        self,
        table: _Table,
        line: int,
        cells: Sequence[str],
        preds_col: int | None,
        extracted_col: int | None,
    ) -> Ranking | None:
        """The judge's ranking from ``preds``, cross-checked against ``extracted_pred``.

        Why ``preds`` is trusted: it is what the judge wrote. The released ``extracted_pred``
        breaks ties by list order (``Content A: 1, Content B: 1`` became ``1,2,0``) - exactly
        the silent tie-breaking the brief warns about. ``extracted_pred`` is only used when the
        file has no ``preds`` column; ``-1,-1,-1`` there is unscorable, never a guess.
        """
        if preds_col is None:
            assert extracted_col is not None
            raw = _cell(cells, extracted_col)
            extracted = _parse_extracted(raw)
            ranks = REASON_UNSCORABLE if extracted is None else _dense(extracted)
            if isinstance(ranks, str):
                self.problem(table, line, table.header[extracted_col], ranks, raw)
                return None
            return ranks
        raw = _cell(cells, preds_col)
        ranks = parse_judge_output(raw)
        if isinstance(ranks, str):
            self.problem(table, line, table.header[preds_col], ranks, raw)
            return None
        if extracted_col is not None:
            raw_extracted = _cell(cells, extracted_col)
            if _parse_extracted(raw_extracted) != ranks:
                self.problem(
                    table,
                    line,
                    table.header[extracted_col],
                    REASON_EXTRACTED_DISAGREES,
                    raw_extracted,
                )
        return ranks


def _files(directory: Path) -> Iterator[Path]:
    """Files of the directory and of its ``raw_submissions/`` folder, sorted by name."""
    for folder in (directory, directory / _SUBDIR):
        if folder.is_dir():
            yield from sorted(p for p in folder.iterdir() if p.is_file())


def load_llm_harm(
    directory: Path, *, reversed_groups: Collection[int] = REVERSED_GROUPS
) -> LlmHarmData:
    """Parse the whole LLM-Harm directory: group submissions, expert file, judge files.

    Group files are read in group-number order (so "first occurrence" of a repeated prompt is
    deterministic), then the expert file, then the judge files. Groups listed in
    ``reversed_groups`` are flipped with :func:`parse_ranking`'s ``reverse``.

    Judge and expert rows find their human prompt by :func:`normalise_prompt`. When the text
    matches several prompts (a prompt repeated with different answers), the row's own answer
    columns decide; a judge file without answer columns uses the row of a sibling judge file
    at the same position that has them (same prompt required); otherwise the row is reported
    as :data:`REASON_AMBIGUOUS_PROMPT`.

    Raises FileNotFoundError when the directory holds no ``output_Group_<N>.csv`` file.
    """
    directory = Path(directory)
    files = list(_files(directory))
    groups = sorted(
        (int(match.group(1)), path)
        for path in files
        if (match := _GROUP_FILE.fullmatch(path.name)) is not None
    )
    if not groups:
        raise FileNotFoundError(
            f"{directory}: no output_Group_<N>.csv files (looked in it and in {_SUBDIR}/)"
        )
    loader = _Loader(directory.resolve())
    for group, path in groups:
        loader.load_group(path.resolve(), group, group in reversed_groups)
    for path in files:
        if path.name.casefold() == _EXPERT_FILE:
            loader.load_expert(path.resolve())
    loader.load_judges([p.resolve() for p in files if p.name.casefold().endswith(_JUDGE_SUFFIX)])
    return LlmHarmData(loader.prompts, loader.answers, loader.labels, loader.problems)
