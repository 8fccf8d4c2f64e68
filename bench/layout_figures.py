"""The code-layout figures of the ownership redesign (issue 10), now and at a base revision.

    .venv/bin/python bench/layout_figures.py [--base a0b5144]

Prints the five largest source files (lines), the kernel's imports of service packages (must
be none), and where each registered extension lives (one module each: adding one is that
module plus its README row, which tests compare with the registries).
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"^(lib|services|client)/.*\.py$")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def sizes(rev: str | None) -> dict[str, int]:
    """Lines per source file (generated stubs left out), at `rev` or in the working tree."""
    names = git("ls-tree", "-r", "--name-only", rev or "HEAD").split()
    out = {}
    for name in names:
        if CODE.match(name) and "_pb2" not in name:
            text = git("show", f"{rev}:{name}") if rev else (ROOT / name).read_text()
            out[name] = text.count("\n")
    return out


def kernel_imports_of_services(rev: str | None) -> list[str]:
    hits = []
    for name in sizes(rev):
        if name.startswith("lib/"):
            text = git("show", f"{rev}:{name}") if rev else (ROOT / name).read_text()
            hits += [
                f"{name}: {m.strip()}"
                for m in re.findall(r"^\s*(?:from|import) harmeval_\w+", text, re.M)
            ]
    return hits


def extensions() -> dict[str, list[str]]:
    from harmeval_generator.backends.registry import backends
    from harmeval_judge.family import families
    from harmeval_metrics.registry import registered

    return {
        "judge families": sorted(f"{f.name} ({f.module})" for f in families().values()),
        "generator backends": sorted(f"{b.name} ({b.module})" for b in backends().values()),
        "report statistics": sorted(f"{s.name} ({s.module})" for s in registered()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="a0b5144", help="revision to compare with")
    args = parser.parse_args()
    for label, rev in ((f"base {args.base}", args.base), ("now", None)):
        lines = sizes(rev)
        top = sorted(lines.items(), key=lambda kv: -kv[1])[:5]
        print(
            f"{label}: {sum(lines.values())} lines in {len(lines)} files; largest five "
            f"{sum(n for _, n in top)} lines:"
        )
        for name, n in top:
            print(f"  {n:5d} {name}")
        hits = kernel_imports_of_services(rev)
        print(f"  kernel imports of services: {len(hits)}" + "".join(f"\n    {h}" for h in hits))
    for kind, entries in extensions().items():
        print(f"{kind}: {len(entries)}, each one self-registering module")
        for e in entries:
            print(f"  {e}")


if __name__ == "__main__":
    main()
