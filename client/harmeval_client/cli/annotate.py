"""`harmeval annotate open`: opens a study to people in the annotation app (which prompts,
how many people each, under which guidelines)."""

from __future__ import annotations

import argparse
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console

from harmeval.clients import bearer_token
from harmeval.settings import SettingsError
from harmeval.tls import is_loopback
from harmeval_client.settings import ClientSettings


class AnnotateError(Exception):
    """The annotation app refused or could not be reached."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    annotate = sub.add_parser("annotate", help="open a study to people in the annotation app")
    actions = annotate.add_subparsers(dest="action", required=True)
    opened = actions.add_parser("open", help="put a study's prompts in the annotation app's queue")
    opened.add_argument("study")
    opened.add_argument(
        "--design",
        choices=["all", "uniform", "active"],
        default="all",
        help="all prompts, or a draw of --budget of them: uniform, or active (more likely "
        "where the study's judges disagree); each prompt's probability is kept with its labels",
    )
    opened.add_argument("--budget", type=int, help="prompts to draw (uniform and active)")
    opened.add_argument("--overlap", type=int, help="people per prompt (default: the app's)")
    opened.add_argument("--scale", choices=["rank", "binary"], default="rank")
    opened.add_argument("--guidelines", type=Path, help="a text file shown to the annotators")
    opened.add_argument("--seed", type=int, default=0, help="the draw (same seed, same plan)")


def app_url(settings: ClientSettings) -> str:
    scheme = "https" if settings.tls_ca_file else "http"
    return f"{scheme}://{settings.annotator_address}"


def open_queue(settings: ClientSettings, body: dict[str, Any]) -> dict[str, Any]:
    """POSTs the queue to the app with this client's (operator) token."""
    if not settings.tls_ca_file and not (
        is_loopback(settings.annotator_address) or settings.allow_plaintext
    ):
        raise SettingsError(
            f"refusing to send a token in plaintext to {settings.annotator_address}: "
            "set HARMEVAL_TLS_CA_FILE (--ca) to use HTTPS"
        )
    request = urllib.request.Request(
        f"{app_url(settings)}/api/queues",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {bearer_token(settings)}",
        },
    )
    ca = settings.tls_ca_file
    context = ssl.create_default_context(cafile=ca) if ca else None
    try:
        with urllib.request.urlopen(request, timeout=120, context=context) as reply:
            result: dict[str, Any] = json.loads(reply.read())
            return result
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            error = exc.reason
        raise AnnotateError(f"the annotation app refused: {error}") from exc
    except OSError as exc:
        raise AnnotateError(
            f"the annotation app at {app_url(settings)} is not reachable ({exc}); "
            "is the stack running? try `harmeval up`"
        ) from exc


def run(args: argparse.Namespace, settings: ClientSettings, console: Console) -> None:
    body: dict[str, Any] = {
        "study": args.study,
        "design": args.design,
        "scale": args.scale,
        "seed": args.seed,
        "guidelines": args.guidelines.read_text(encoding="utf-8") if args.guidelines else "",
    }
    if args.budget is not None:
        body["budget"] = args.budget
    if args.overlap is not None:
        body["overlap"] = args.overlap
    reply = open_queue(settings, body)
    console.print(
        f"study {reply['study']}: {reply['prompts']} prompts open for labelling "
        f"({reply['design']}, guidelines version {reply['guideline_version']}) at "
        f"{app_url(settings)}/studies/{reply['study']}"
    )
    console.print(
        "annotators sign in with their own token: "
        "harmeval token create --role annotator --name <person>"
    )
