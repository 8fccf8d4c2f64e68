"""Prints the third-party requirements of harmeval packages, one per line, for `pip install -r`.

Images install them in a layer that sees only the packages' pyproject.toml files, before the
sources are copied, so a code change does not rebuild it (for the generator: llama.cpp's
compile, vLLM's download). The harmeval packages themselves are installed afterwards with
`--no-deps`; their pins live only in their pyproject.toml files.

    python dependencies.py /src/lib /src/services/generator[vllm]
    python dependencies.py --extras-only /src/services/generator[embedded-model]
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

# A folder holding a pyproject.toml, optionally followed by [extra,extra].
PACKAGE = re.compile(r"^(?P<path>[^\[]+)(?:\[(?P<extras>[^\]]*)\])?$")


def requirements(package: str, extras_only: bool = False) -> list[str]:
    match = PACKAGE.match(package)
    if match is None:
        raise SystemExit(f"not a package folder: {package!r}")
    project = tomllib.loads((Path(match["path"]) / "pyproject.toml").read_text())["project"]
    extras = [e.strip() for e in (match["extras"] or "").split(",") if e.strip()]
    reqs = [] if extras_only else list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    # harmeval's own packages come from the sources, not from an index.
    return [r for r in reqs if not re.match(r"(?i)harmeval[-_.]", r)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="+", help="folder[extra,...] with a pyproject.toml")
    parser.add_argument("--extras-only", action="store_true", help="only the named extras")
    args = parser.parse_args()
    seen: list[str] = []
    for package in args.packages:
        seen += [r for r in requirements(package, args.extras_only) if r not in seen]
    print("\n".join(seen))


if __name__ == "__main__":
    main()
