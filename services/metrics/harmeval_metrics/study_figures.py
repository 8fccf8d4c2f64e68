"""A study's labels, and what the report statistics (``harmeval_metrics.stats``) compute from.

Units are (prompt, small model). A coder's label of a unit is usable when its verdict was
scorable; unscorable verdicts are missing data, never "not harmful". Where three or more human
coders label a unit, a consensus pseudo-coder (strict majority) is added so every judge can be
compared with "the humans". With only two human coders a "consensus" would be just the units
where they agree, which flatters everyone compared with it, so none is formed. Human–human
pairs give the agreement ceiling.

``Study`` holds one request's inputs and derives, once, what several statistics share (usable
labels per coder, the human consensus, the judgments to rank); ``Study.report`` runs every
statistic registered for a report. Nothing here knows protobuf: ``responses`` turns the results
into messages.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from harmeval.verdicts import OK
from harmeval_metrics.ranking import CoderJudgment
from harmeval_metrics.records import StudyAnswer, StudyLabel
from harmeval_metrics.registry import Report, registered

CONSENSUS = "humans (consensus)"
MIN_CONSENSUS = 3
# Resamples behind the CIs that some statistics need even when no bootstrap was asked for;
# the CIs are then simply not reported.
DEFAULT_RESAMPLES = 200
DISAGREEMENT_LIMIT = 20

Unit = tuple[int, str]
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Label:
    harmful: bool
    rank: int | None


@dataclass(frozen=True, kw_only=True)
class Options:
    bootstrap: int = 0
    confidence: float = 0.95
    seed: int = 0
    # The harm-rate half-width that "how many human labels" aims at.
    target_half_width: float = 0.05

    @property
    def with_ci(self) -> bool:
        """Whether CIs are reported (a bootstrap was asked for)."""
        return self.bootstrap > 0

    @property
    def resamples(self) -> int:
        """Resamples for statistics that always bootstrap."""
        return self.bootstrap or DEFAULT_RESAMPLES


def usable_labels(labels: Iterable[StudyLabel]) -> dict[str, dict[Unit, Label]]:
    """coder -> unit -> label; the first label per coder and unit (annotators of one coder
    label disjoint units in practice, e.g. the seed study's student groups)."""
    out: dict[str, dict[Unit, Label]] = defaultdict(dict)
    for lb in labels:
        if lb.status == OK and lb.harmful is not None:
            out[lb.coder].setdefault(
                (lb.prompt_id, lb.model), Label(harmful=lb.harmful, rank=lb.rank)
            )
    return dict(out)


def human_coders(labels: Iterable[StudyLabel]) -> list[str]:
    return sorted({lb.coder for lb in labels if lb.coder_kind == "human"})


def _majority(values: Sequence[object]) -> object | None:
    value, count = Counter(values).most_common(1)[0]
    return value if count * 2 > len(values) else None


def consensus(by_coder: dict[str, dict[Unit, Label]], humans: Sequence[str]) -> dict[Unit, Label]:
    """Strict-majority label of the human coders per unit (units with three or more)."""
    per_unit: dict[Unit, list[Label]] = defaultdict(list)
    for coder in humans:
        for unit, label in by_coder.get(coder, {}).items():
            per_unit[unit].append(label)
    out: dict[Unit, Label] = {}
    for unit, labels in per_unit.items():
        if len(labels) < MIN_CONSENSUS:
            continue
        harmful = _majority([lb.harmful for lb in labels])
        if harmful is None:
            continue
        ranks = [lb.rank for lb in labels]
        rank = _majority(ranks) if None not in ranks else None
        out[unit] = Label(harmful=bool(harmful), rank=rank if isinstance(rank, int) else None)
    return out


def human_truth(by_coder: dict[str, dict[Unit, Label]], humans: Sequence[str]) -> dict[Unit, Label]:
    """What a judge's error is measured against: the majority of three or more people where
    there is one, else the first human coder's label, else the next one's."""
    truth = consensus(by_coder, humans)
    for coder in humans:
        for unit, label in by_coder.get(coder, {}).items():
            truth.setdefault(unit, label)
    return truth


def judgments_of(by_coder: dict[str, dict[Unit, Label]]) -> list[CoderJudgment]:
    return [
        CoderJudgment(
            coder=coder, model=model, prompt=str(prompt_id), harmful=label.harmful, rank=label.rank
        )
        for coder, units in by_coder.items()
        for (prompt_id, model), label in units.items()
    ]


@dataclass(frozen=True, kw_only=True, eq=False)
class Study:
    """One study's labels and the request's parameters; derived data is computed on first use.

    Not every report needs every input: ``models`` and ``flags`` serve the ranking,
    ``breakdown`` the agreement, ``answers`` and ``limit`` the disagreements.
    """

    labels: Sequence[StudyLabel]
    options: Options = Options()
    # The study's small models in study order (the order of win-matrix rows and columns).
    models: Sequence[str] = ()
    # Agreement subsets besides all units: "category" and/or "model".
    breakdown: Sequence[str] = ()
    # Per small model: (answers, {pathology flag: answers with that flag}).
    flags: Mapping[str, tuple[int, Mapping[str, int]]] = field(default_factory=dict)
    answers: Sequence[StudyAnswer] = ()
    # Most disagreements reported.
    limit: int = DISAGREEMENT_LIMIT
    # prompt id -> the probability its human labels had of being asked for (the annotation
    # app's draws); empty when people's labels are taken as a uniform sample.
    inclusion: Mapping[int, float] = field(default_factory=dict)
    # (prompt id, annotator) of the labels people gave in the annotation app.
    app_labelled: frozenset[tuple[int, str]] = frozenset()
    _results: dict[Callable[[Study], Any], Any] = field(
        default_factory=dict, init=False, repr=False
    )

    @cached_property
    def by_coder(self) -> dict[str, dict[Unit, Label]]:
        """Usable labels: coder -> unit -> label."""
        return usable_labels(self.labels)

    @cached_property
    def humans(self) -> list[str]:
        return human_coders(self.labels)

    @cached_property
    def consensus(self) -> dict[Unit, Label]:
        return consensus(self.by_coder, self.humans)

    @cached_property
    def agreement_coders(self) -> dict[str, dict[Unit, Label]]:
        """The coders compared for agreement: every coder, and the human consensus if formed."""
        coders = dict(self.by_coder)
        if self.consensus:
            coders[CONSENSUS] = self.consensus
        return coders

    @cached_property
    def truth(self) -> dict[Unit, Label]:
        return human_truth(self.by_coder, self.humans)

    @cached_property
    def judgments(self) -> list[CoderJudgment]:
        """Every usable label as a judgment to rank models by."""
        return judgments_of(self.by_coder)

    def result(self, compute: Callable[[Study], T]) -> T:
        """``compute(self)``, once per study: how one statistic uses another's results."""
        if compute not in self._results:
            self._results[compute] = compute(self)
        value: T = self._results[compute]
        return value

    def report(self, report: Report) -> dict[str, object]:
        """Every statistic registered for ``report``: name -> result. ValueError when the
        labels cannot be used (e.g. a coder mixing ranks and values)."""
        return {s.name: self.result(s.compute) for s in registered(report)}
