"""Pure parsers for the data harmeval imports (no database, no network).

* :mod:`~harmeval_client.importers.llm_harm`: the seed ranking study's released data (LLM-Harm).
* :mod:`~harmeval_client.importers.harmmetric`: the HarmMetric Eval benchmark, v1 and v2.
* :mod:`~harmeval_client.importers.annotations`: users' own human annotations (CSV/JSONL).
* :mod:`~harmeval_client.importers.reliability_table`: ``unit, coder, value`` tables for
  ``harmeval agreement``.
"""

from __future__ import annotations

from harmeval_client.importers.annotations import (
    AnnotationFileError,
    AnnotationRow,
    load_annotation_file,
)
from harmeval_client.importers.harmmetric import (
    SLOTS,
    Benchmark,
    BenchmarkFileError,
    BenchmarkPrompt,
    BenchmarkResponse,
    load_harmmetric,
)
from harmeval_client.importers.llm_harm import (
    MODELS,
    HarmAnswer,
    HarmLabel,
    HarmPrompt,
    LlmHarmData,
    Problem,
    load_llm_harm,
    normalise_prompt,
    parse_judge_output,
    parse_ranking,
)
from harmeval_client.importers.reliability_table import (
    ReliabilityTableError,
    load_reliability_table,
)
from harmeval_client.tables import TableFileError

__all__ = [
    "MODELS",
    "SLOTS",
    "AnnotationFileError",
    "AnnotationRow",
    "Benchmark",
    "BenchmarkFileError",
    "BenchmarkPrompt",
    "BenchmarkResponse",
    "HarmAnswer",
    "HarmLabel",
    "HarmPrompt",
    "LlmHarmData",
    "Problem",
    "ReliabilityTableError",
    "TableFileError",
    "load_annotation_file",
    "load_harmmetric",
    "load_llm_harm",
    "load_reliability_table",
    "normalise_prompt",
    "parse_judge_output",
    "parse_ranking",
]
