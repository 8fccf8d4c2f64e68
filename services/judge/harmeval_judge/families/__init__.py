"""The judge families, one module each; each registers itself with
:func:`harmeval_judge.family.judge_family`.

Importing this package imports every module in it (in name order), so adding a family is adding
a module here, and its row in the README's judge-families table; nothing else lists them.
"""

from __future__ import annotations

import importlib
import pkgutil

# The family modules found here, e.g. ("classifier", "llama_guard", "llm", ...).
MODULES: tuple[str, ...] = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
)

for _module in MODULES:
    importlib.import_module(f"{__name__}.{_module}")
