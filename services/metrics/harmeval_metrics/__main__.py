"""`python -m harmeval_metrics`: runs the metrics service."""

import asyncio

from harmeval import settings as settings_module
from harmeval.server import serve
from harmeval_metrics.service import SPEC, MetricsServicer
from harmeval_metrics.settings import MetricsSettings


def main() -> None:
    s = settings_module.load(MetricsSettings)
    asyncio.run(serve(SPEC, MetricsServicer(s), s.metrics_address, s.metrics_prometheus_port, s))


if __name__ == "__main__":
    main()
