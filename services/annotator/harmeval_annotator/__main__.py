"""`python -m harmeval_annotator`: runs the annotation app."""

import uvicorn
from prometheus_client import start_http_server

from harmeval import settings as settings_module
from harmeval.log import configure_logging
from harmeval_annotator.app import create_app
from harmeval_annotator.settings import AnnotatorSettings


def main() -> None:
    s = settings_module.load(AnnotatorSettings)
    configure_logging(s.log_level, s.log_format)
    host, port = s.annotator_address.rsplit(":", 1)
    start_http_server(s.annotator_prometheus_port, addr=host.strip("[]") or "0.0.0.0")
    uvicorn.run(
        create_app(s),
        host=host.strip("[]"),
        port=int(port),
        log_config=None,  # harmeval's own logging
        timeout_graceful_shutdown=int(s.grace_seconds),
    )


if __name__ == "__main__":
    main()
