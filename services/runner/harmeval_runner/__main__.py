"""`python -m harmeval_runner`: runs the runner service."""

import asyncio

from harmeval import settings as settings_module
from harmeval.server import serve
from harmeval_runner.service import SPEC, RunnerServicer
from harmeval_runner.settings import RunnerSettings


def main() -> None:
    s = settings_module.load(RunnerSettings)
    asyncio.run(serve(SPEC, RunnerServicer(s), s.runner_address, s.runner_prometheus_port, s))


if __name__ == "__main__":
    main()
