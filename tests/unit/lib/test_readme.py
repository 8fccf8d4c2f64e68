"""The README documents every setting the code reads."""

from pathlib import Path

from harmeval.settings import (
    GeneratorSettings,
    JudgeSettings,
    MetricsSettings,
    describe,
)
from harmeval_client.settings import ClientSettings

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    names = {
        row[0]
        for cls in (GeneratorSettings, JudgeSettings, MetricsSettings, ClientSettings)
        for row in describe(cls)
    }
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"settings missing from README: {missing}"
