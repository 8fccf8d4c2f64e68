"""Per coder: labels scored and unscorable, annotators, and labels that changed with the order
the answers were shown in."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from harmeval.verdicts import OK
from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import Study


@dataclass(frozen=True, kw_only=True)
class CoderCoverage:
    coder: str
    # "human" or "model".
    kind: str
    n_scored: int
    n_unscorable: int
    n_annotators: int
    n_order_sensitive: int


@statistic(
    name="coverage",
    report="agreement",
    into="coverage",
    what="per coder: labels scored / unscorable, annotators, order-sensitive labels",
)
def coverage(study: Study) -> list[CoderCoverage]:
    kinds = {lb.coder: lb.coder_kind for lb in study.labels}
    annotators: dict[str, set[str]] = defaultdict(set)
    scored: Counter[str] = Counter()
    unscorable: Counter[str] = Counter()
    order_sensitive: Counter[str] = Counter()
    for lb in study.labels:
        annotators[lb.coder].add(lb.annotator)
        (scored if lb.status == OK else unscorable)[lb.coder] += 1
        order_sensitive[lb.coder] += lb.order_sensitive
    return [
        CoderCoverage(
            coder=c,
            kind=kinds[c],
            n_scored=scored[c],
            n_unscorable=unscorable[c],
            n_annotators=len(annotators[c]),
            n_order_sensitive=order_sensitive[c],
        )
        for c in sorted(kinds)
    ]
