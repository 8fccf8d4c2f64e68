"""The report statistics: each registers itself, by name, in the module that defines it.

A statistic is a function from a ``study_figures.Study`` to plain Python results: a dataclass,
or a list of dataclasses, whose field names are those of the protobuf message they become
(``responses`` converts them; nothing else does). It declares

* ``report``: the response it belongs to ("agreement", "ranking" or "disagreements");
* ``into``: the response field its results fill; None for the response's own fields (a single
  dataclass, e.g. Fleiss' kappa and its unit count);
* ``join``: for a statistic that adds columns to rows another statistic makes (e.g. the
  corrected harm rate beside each coder and model's Bradley–Terry strength), the fields that
  identify a row; its results are merged into the rows with the same values there.

Every module in ``harmeval_metrics.stats`` is imported the first time the registry is read, so
a new statistic is one new module there (plus a README row, and a proto field for anything the
wire does not carry yet). Statistics of one report run in module-name order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from harmeval.registry import discover

if TYPE_CHECKING:
    from harmeval_metrics.study_figures import Study

__all__ = ["REPORTS", "Report", "Statistic", "get", "registered", "statistic"]

Report = Literal["agreement", "ranking", "disagreements"]
REPORTS: tuple[Report, ...] = ("agreement", "ranking", "disagreements")

F = TypeVar("F", bound=Callable[["Study"], Any])


@dataclass(frozen=True, kw_only=True)
class Statistic:
    name: str
    report: Report
    into: str | None
    # One line: what the statistic is (the README's table says the same).
    what: str
    compute: Callable[[Study], Any]
    join: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.compute.__module__


_REGISTRY: dict[str, Statistic] = {}
STATS = "harmeval_metrics.stats"


def statistic(
    *, name: str, report: Report, into: str | None, what: str, join: tuple[str, ...] = ()
) -> Callable[[F], F]:
    """Registers the decorated function as the statistic ``name``."""
    if report not in REPORTS:
        raise ValueError(f"statistic {name!r}: unknown report {report!r}")

    def register(compute: F) -> F:
        known = _REGISTRY.get(name)
        if known is not None and known.compute is not compute:
            raise ValueError(f"statistic {name!r} is registered twice ({known.module})")
        _REGISTRY[name] = Statistic(
            name=name, report=report, into=into, what=what, compute=compute, join=join
        )
        return compute

    return register


def registered(report: Report | None = None) -> list[Statistic]:
    """The statistics of ``report`` (all if None), in module-name order."""
    discover(STATS)
    found = [s for s in _REGISTRY.values() if report is None or s.report == report]
    return sorted(found, key=lambda s: s.module)


def get(name: str) -> Statistic:
    discover(STATS)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no statistic {name!r}; registered: {sorted(_REGISTRY)}") from None
