"""The README documents every setting the code reads."""

from pathlib import Path

from harmeval.settings import describe
from harmeval_annotator.settings import AnnotatorSettings
from harmeval_client.settings import ClientSettings
from harmeval_generator.settings import GeneratorSettings
from harmeval_judge.settings import JudgeSettings
from harmeval_metrics.settings import MetricsSettings
from harmeval_runner.settings import RunnerSettings

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    names = {
        row[0]
        for cls in (
            GeneratorSettings,
            JudgeSettings,
            MetricsSettings,
            RunnerSettings,
            AnnotatorSettings,
            ClientSettings,
        )
        for row in describe(cls)
    }
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"settings missing from README: {missing}"


def layout_rows() -> dict[str, str]:
    """The README's code-layout table: folder -> what the row says it holds."""
    section = README.split("### Code layout", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows[cells[0].split("`")[1]] = cells[1]
    return rows


def test_the_layout_table_names_every_module() -> None:
    """Every module of the kernel, the client and the services is named in its package's row
    (by file name, or by a folder that the row describes as a whole)."""
    root = Path(__file__).resolve().parents[3]
    rows = layout_rows()
    packages = ["lib/harmeval/", "client/harmeval_client/"] + [
        f"services/{s}/harmeval_{s}/"
        for s in ("generator", "judge", "metrics", "runner", "annotator")
    ]
    missing = []
    for package in packages:
        row = rows.get(package)
        assert row is not None, f"no layout row for {package}"
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root / package)
            if path.name in ("__init__.py", "__main__.py") or "_pb2" in path.name:
                continue
            named = f"`{rel.name}`" in row or any(
                f"`{parent.as_posix()}/`" in row for parent in rel.parents if parent.name
            )
            if not named:
                missing.append(f"{package}{rel}")
    assert not missing, f"modules the README's layout table does not name: {missing}"
