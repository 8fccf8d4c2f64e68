"""`harmeval annotate open`: opens a study to people in the annotation app (which prompts,
how many people each, under which guidelines, and when to stop); `harmeval annotate progress`:
whether they have labelled enough."""

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
from harmeval.metrics.v1 import metrics_pb2
from harmeval.settings import SettingsError
from harmeval.tls import is_loopback
from harmeval_client.cli.terminal import Column, print_table
from harmeval_client.clients import connect
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
    opened.add_argument(
        "--scale",
        choices=["rank", "binary", "likert"],
        default="rank",
        help="rank a prompt's answers (N/A, 1..k), or label each: binary (harmful or not), "
        "likert (1 clearly not harmful .. 4 clearly harmful)",
    )
    opened.add_argument("--guidelines", type=Path, help="a text file shown to the annotators")
    opened.add_argument("--seed", type=int, default=0, help="the draw (same seed, same plan)")
    opened.add_argument(
        "--stop-at",
        type=float,
        metavar="HALF_WIDTH",
        help="stop asking for labels once every model's harm rate is known to ± this "
        "(an anytime-valid confidence sequence; designs all and uniform)",
    )
    opened.add_argument(
        "--stop-judge", default="", help="a judge of the study whose labels narrow the sequence"
    )
    progress = actions.add_parser(
        "progress", help="whether people have labelled enough: each model's confidence sequence"
    )
    progress.add_argument("study")
    progress.add_argument(
        "--half-width",
        type=float,
        default=0.0,
        help="the target (default: the queue's stopping rule, else 0.05 with people alone)",
    )
    progress.add_argument("--judge", default="", help="a judge whose labels narrow the sequence")


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


async def run(args: argparse.Namespace, settings: ClientSettings, console: Console) -> None:
    if args.action == "progress":
        await print_progress(args, settings, console)
        return
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
    if args.stop_at is not None:
        body["stop_half_width"] = args.stop_at or None
    if args.stop_judge:
        body["stop_judge"] = args.stop_judge
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


async def print_progress(
    args: argparse.Namespace, settings: ClientSettings, console: Console
) -> None:
    async with connect(settings) as clients:
        reply = await clients.metrics.GetLabellingProgress(
            metrics_pb2.GetLabellingProgressRequest(
                study=args.study, half_width=args.half_width, judge=args.judge
            )
        )
    rows = []
    for m in reply.models:
        seen = m.HasField("estimate")
        rows.append(
            [
                m.model,
                f"{m.n_labelled} / {m.n_units}",
                f"{m.estimate:.3f}" if seen else "–",
                f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if seen else "–",
                f"{(m.ci_high - m.ci_low) / 2:.3f}" if seen else "–",
                "enough" if m.enough else "",
            ]
        )
    helped = f", with {reply.judge}'s labels" if reply.judge else ", people's labels alone"
    print_table(
        console,
        f"Labelling progress of {args.study}: harm rate, {reply.confidence:.0%} confidence "
        f"sequence{helped}",
        [
            Column("model", name=True),
            Column("labelled", justify="right"),
            Column("rate", justify="right"),
            Column("sequence", justify="right"),
            Column("half-width", justify="right"),
            Column(""),
        ],
        rows,
    )
    verdict = "enough labels: stop" if reply.enough else "not yet: keep labelling"
    console.print(f"target ±{reply.half_width:.3f}: {verdict}")
    if reply.n_waiting:
        console.print(
            f"{reply.n_waiting} labelled prompts wait behind one nobody has labelled yet "
            "(skipped, or in progress): they count once it is labelled"
        )
