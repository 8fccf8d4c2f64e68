"""The metric names a PromQL expression (or a Grafana query) selects.

Not a full parser: it removes what cannot hold a metric name (strings, label matchers, range
selectors, grouping clauses, Grafana variables) and keeps the identifiers that are not function
calls or keywords. The real Prometheus parses every query in test_prometheus_scrape.py, so a
query this reads wrongly still cannot pass with a syntax error.
"""

from __future__ import annotations

import re
from typing import Any

KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "atan2", "inf", "nan", "Inf", "NaN"}
)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    # Grafana's label_values(metric{...}, label): only the first argument names a metric.
    s = re.sub(r"label_values\(([^,]*),\s*\w+\s*\)", r"(\1)", s)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", "", s)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        name, call = match.group(1), match.group(2)
        if call or name in KEYWORDS:
            continue
        names.add(name)
    return names


def uses_name_matcher(expr: str) -> bool:
    """`{__name__=~"..."}` selects metrics without naming them: not allowed here."""
    return "__name__" in expr


def grafana_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, query) for every panel target and templating query of a dashboard."""
    queries: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            queries.append((f"variable ${var['name']}", query))
    return queries
