"""The committed gRPC stubs must be exactly what `make protos` generates from protos/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    written = gen.generate(tmp_path)
    assert len(written) == 3 * len(gen.proto_files()) >= 12
    stale = [
        str(p.relative_to(tmp_path))
        for p in written
        if p.read_bytes() != (ROOT / "lib" / p.relative_to(tmp_path)).read_bytes()
    ]
    assert not stale, f"stale generated code, run `make protos`: {stale}"
