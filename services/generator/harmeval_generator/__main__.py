"""`python -m harmeval_generator`: runs the generator service."""

import asyncio

from harmeval import settings as settings_module
from harmeval.server import serve
from harmeval_generator.service import SPEC, GeneratorServicer
from harmeval_generator.settings import GeneratorSettings


def main() -> None:
    s = settings_module.load(GeneratorSettings)
    asyncio.run(
        serve(SPEC, GeneratorServicer(s), s.generator_address, s.generator_prometheus_port, s)
    )


if __name__ == "__main__":
    main()
