from __future__ import annotations

from pathlib import Path

import pytest

from harmeval_client.study import StudyFileError, load_study

ROOT = Path(__file__).resolve().parents[3]

GOOD = """\
name: s
prompts: builtin
limit: 5
models:
  - {name: a, model: gemma3-270m, temperature: 0.5, max_tokens: 32, seed: 3, stop: "\\n\\n"}
  - {name: b, model: gemma3-270m}
judges: [refusal-matcher]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_default_example_study_loads() -> None:
    study = load_study(ROOT / "examples" / "default-study.yaml")
    assert study.name == "small-model-harm" and len(study.prompts) == 48
    # Two different small models (a base and an instruction-tuned one), greedy and sampled.
    assert [m.model for m in study.models] == ["gemma3-270m"] * 2 + ["smollm2-135m-instruct"] * 2
    assert len({m.params.cache_key() for m in study.models}) == 2
    assert study.judges == [
        "refusal-matcher",
        "profanity-classifier",
        "openai-listwise-smollm2-135m-instruct",
    ]


def test_good_study(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, GOOD))
    assert len(study.prompts) == 5
    a, b = study.models
    assert (a.params.temperature, a.params.max_tokens, a.params.seed, a.params.stop) == (
        0.5,
        32,
        3,
        ("\n\n",),
    )
    assert b.params.temperature == 0.0 and b.params.max_tokens == 128


def test_own_prompt_file_relative_to_study(tmp_path: Path) -> None:
    (tmp_path / "mine.jsonl").write_text('{"id": "x", "text": "Say hi", "category": "toxicity"}\n')
    study = load_study(
        write(tmp_path, GOOD.replace("prompts: builtin\nlimit: 5", "prompts: mine.jsonl"))
    )
    assert [p.id for p in study.prompts] == ["x"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("name: s", "name: ''", "name: expected a non-empty string"),
        (
            "temperature: 0.5",
            "temperature: hot",
            "models[0].temperature: expected a number, got 'hot'",
        ),
        ("max_tokens: 32", "max_tokens: 2.5", "models[0].max_tokens: expected a whole number"),
        ("top_p", "top_p", ""),  # placeholder replaced below
        ("{name: b, model: gemma3-270m}", "{name: a, model: gemma3-270m}", "names must be unique"),
        (
            "{name: b, model: gemma3-270m}",
            "{name: b, modle: x}",
            "models[1]: unknown field(s) ['modle']",
        ),
        ("judges: [refusal-matcher]", "judges: []", "judges: expected a non-empty list"),
        ("prompts: builtin", "prompts: missing.csv", "prompts:"),
        ("limit: 5", "limit: 0", "limit: expected a positive number"),
        ("temperature: 0.5", "temperature: 9", "temperature must be in [0, 5]"),
    ],
)
def test_mistakes_name_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    if old == "top_p":
        old, new, message = "seed: 3", "seed: 3, top_p: 0", "top_p must be in (0, 1]"
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(StudyFileError) as err:
        load_study(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_not_yaml_or_missing(tmp_path: Path) -> None:
    with pytest.raises(StudyFileError, match="not valid YAML"):
        load_study(write(tmp_path, "name: [unclosed"))
    with pytest.raises(StudyFileError, match="no such study file"):
        load_study(tmp_path / "nope.yaml")
