"""One owner per table: a service imports no other service's code, its SQL names only its own
schema's tables and the views other owners publish, and the kernel imports no service."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("generator", "judge", "metrics", "runner", "annotator")
# What each owner publishes for the others (its migrations create and grant these).
PUBLISHED = {
    "generator": {"prompts_v1", "answers_v1"},
    "judge": {"labels_v1"},
    "metrics": set(),
    "runner": set(),
    "annotator": {"queued_v1", "labelled_v1", "queues_v1"},
}
# schema.relation as written in SQL (a word after a schema name and a dot).
QUALIFIED = re.compile(r"\b(generator|judge|metrics|runner|annotator|public)\.([a-z_][a-z0-9_]*)\b")


def python_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.py") if "_pb2" not in p.name]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def sql_strings(path: Path) -> list[str]:
    """String constants of a module that read as SQL (adjacent literals joined by Python)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    keywords = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|JOIN)\b")
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and keywords.search(node.value)
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service: str) -> None:
    package = ROOT / "services" / service / f"harmeval_{service}"
    others = {f"harmeval_{s}" for s in SERVICES if s != service}
    for path in python_files(package):
        bad = {m for m in imported_modules(path) if m.split(".")[0] in others}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_kernel_imports_no_service() -> None:
    for path in python_files(ROOT / "lib" / "harmeval"):
        bad = {m for m in imported_modules(path) if m.startswith("harmeval_")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_touches_only_its_tables_and_published_views(service: str) -> None:
    package = ROOT / "services" / service / f"harmeval_{service}"
    texts = [(p, s) for p in python_files(package) for s in sql_strings(p)]
    texts += [(p, p.read_text(encoding="utf-8")) for p in (package / "migrations").glob("*.sql")]
    assert texts, f"no SQL found for {service}"
    for path, text in texts:
        for schema, relation in QUALIFIED.findall(text):
            if schema == service:
                continue
            if path.suffix == ".sql" and schema == "public":
                continue  # the one-time adoption of a database from before the split
            assert relation in PUBLISHED.get(schema, set()), (
                f"{path.relative_to(ROOT)}: {service} reads {schema}.{relation}, which "
                f"{schema} does not publish"
            )


@pytest.mark.parametrize("service", SERVICES)
def test_every_statement_names_its_schema(service: str) -> None:
    """An unqualified table name would resolve through search_path into whatever schema
    happens to be first: every table a service touches is written schema.table."""
    package = ROOT / "services" / service / f"harmeval_{service}"
    unqualified = re.compile(
        r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(?!(?:generator|judge|metrics|runner|annotator)\.)"
        r"([a-z_]+)\b"
    )
    for path in python_files(package):
        for text in sql_strings(path):
            found = [
                t
                for t in unqualified.findall(text)
                if t not in {"unnest", "jsonb_array_elements", "generate_series"}  # functions
            ]
            assert not found, f"{path.relative_to(ROOT)}: unqualified table(s) {found}"


@pytest.mark.parametrize("service", SERVICES)
def test_an_owner_declares_exactly_the_tables_its_migrations_create(service: str) -> None:
    schema = importlib.import_module(f"harmeval_{service}.store").SCHEMA
    sql = "".join(
        p.read_text(encoding="utf-8")
        for p in (ROOT / "services" / service / f"harmeval_{service}" / "migrations").glob("*.sql")
    )
    created = re.findall(rf"CREATE TABLE IF NOT EXISTS {service}\.(\w+)", sql)
    assert schema.name == service and sorted(schema.tables) == sorted(created)


def test_published_views_exist_in_the_owners_migrations() -> None:
    for owner, views in PUBLISHED.items():
        sql = "".join(
            p.read_text(encoding="utf-8")
            for p in (ROOT / "services" / owner / f"harmeval_{owner}" / "migrations").glob("*.sql")
        )
        for view in views:
            assert f"CREATE VIEW {owner}.{view}" in sql
            assert re.search(rf"GRANT SELECT ON [^;]*{owner}\.{view}", sql)
