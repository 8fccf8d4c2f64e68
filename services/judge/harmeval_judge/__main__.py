"""`python -m harmeval_judge`: runs the judge service."""

import asyncio

from harmeval import settings as settings_module
from harmeval.server import serve
from harmeval_judge.service import SPEC, JudgeServicer
from harmeval_judge.settings import JudgeSettings


def main() -> None:
    s = settings_module.load(JudgeSettings)
    asyncio.run(serve(SPEC, JudgeServicer(s), s.judge_address, s.judge_prometheus_port, s))


if __name__ == "__main__":
    main()
