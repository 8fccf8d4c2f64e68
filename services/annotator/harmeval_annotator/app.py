"""The annotation app: people sign in with their own token, read the study's guidelines and
a content warning, and rank (or label) each prompt's answers with the keyboard; labels go to
the metrics service (`ImportAnnotations`, as the person's own human coder) and what each
person did with each prompt stays here, with the order they saw and the probability the
prompt had of being chosen.

Pages are rendered on the server (Jinja2, autoescaped: the answers are untrusted, often
harmful text); one small script does the keyboard. Nothing is loaded from the network.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import psycopg
import psycopg_pool
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from harmeval import access
from harmeval.clients import channel
from harmeval.db import open_database
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.tokens import TokenError, TokenStore
from harmeval.validation import name_problems
from harmeval_annotator.labelling import (
    LETTERS,
    LIKERT_POINTS,
    MAX_ANSWERS,
    RANK,
    SCALES,
    label_problems,
    order_seed,
    pointwise_value,
    queue_order,
    shown_order,
)
from harmeval_annotator.settings import AnnotatorSettings
from harmeval_annotator.store import (
    FLAGGED,
    LABELLED,
    SCHEMA,
    SKIPPED,
    AnnotationStore,
    Outcome,
    Queue,
    QueueHasLabels,
    Session,
    Unit,
)

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "harmeval_session"
# A study's prompts and answers are fetched from the metrics service at most this often.
ANSWERS_TTL_S = 30.0
# A queue's stopping rule is checked at most this often per app process (a failed check too):
# the confidence sequence may be looked at any time, so a late look costs only a few extra
# labels, and pages do not ask the metrics service on every load.
PROGRESS_TTL_S = 10.0
PROGRESS_TIMEOUT_S = 3.0
# People per prompt a queue may ask for.
MAX_OVERLAP = 100
DESIGNS = {
    "uniform": metrics_pb2.LABELLING_DESIGN_UNIFORM,
    "active": metrics_pb2.LABELLING_DESIGN_ACTIVE,
}
OUTCOMES = Counter("harmeval_annotator_outcomes_total", "What people did with prompts", ["outcome"])


@dataclass
class State:
    settings: AnnotatorSettings
    store: AnnotationStore
    metrics: metrics_pb2_grpc.MetricsServiceStub
    tokens: TokenStore
    answers: dict[str, tuple[float, dict[int, metrics_pb2.StudyPrompt]]] = field(
        default_factory=dict
    )
    stopping: dict[str, tuple[float, metrics_pb2.GetLabellingProgressResponse | None]] = field(
        default_factory=dict
    )

    async def study_prompts(self, study: str) -> dict[int, metrics_pb2.StudyPrompt]:
        cached = self.answers.get(study)
        if cached is not None and time.monotonic() - cached[0] < ANSWERS_TTL_S:
            return cached[1]
        reply = await self.metrics.GetStudyAnswers(
            metrics_pb2.GetStudyAnswersRequest(study=study), timeout=30
        )
        prompts = {p.prompt.prompt_id: p for p in reply.prompts}
        self.answers[study] = (time.monotonic(), prompts)
        return prompts

    async def labelling_progress(
        self, queue: Queue
    ) -> metrics_pb2.GetLabellingProgressResponse | None:
        """The queue's stopping rule checked by the metrics service (cached briefly; None when
        it could not be checked: people go on labelling, and the reason is logged)."""
        if queue.stop_half_width is None:
            return None
        cached = self.stopping.get(queue.study)
        if cached is not None and time.monotonic() - cached[0] < PROGRESS_TTL_S:
            return cached[1]
        reply: metrics_pb2.GetLabellingProgressResponse | None = None
        try:
            # No half-width and no judge: the metrics service applies the queue's own rule.
            reply = await self.metrics.GetLabellingProgress(
                metrics_pb2.GetLabellingProgressRequest(study=queue.study),
                timeout=PROGRESS_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            logger.warning(
                "the stopping rule of %s could not be checked: %s: %s",
                queue.study,
                exc.code().name,
                exc.details(),
            )
        self.stopping[queue.study] = (time.monotonic(), reply)
        return reply

    async def enough_labels(self, queue: Queue) -> metrics_pb2.GetLabellingProgressResponse | None:
        """The progress that stops the queue, if it has a stopping rule and reached it."""
        progress = await self.labelling_progress(queue)
        return progress if progress is not None and progress.enough else None


templates = Jinja2Templates(directory=str(HERE / "templates"))


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def _state(request: Request) -> State:
    state: State = request.app.state.annotator
    return state


async def _session(request: Request) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    return None if not cookie else await _state(request).store.session(_digest(cookie))


Handler = Callable[[Request, Session], Awaitable[Response]]


def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Pages for people who signed in; the others are sent to the sign-in page (or, for the
    script's calls, told 401)."""

    async def page(request: Request) -> Response:
        session = await _session(request)
        if session is None:
            if request.method == "GET":
                return RedirectResponse("/login", status_code=303)
            return JSONResponse({"error": "signed out; sign in again"}, status_code=401)
        return await handler(request, session)

    return page


def _grpc_error(exc: grpc.aio.AioRpcError) -> JSONResponse:
    status = {
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.FAILED_PRECONDITION: 409,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.UNAUTHENTICATED: 502,  # the app's own credentials, not the person's
    }.get(exc.code(), 503)
    return JSONResponse({"error": f"{exc.code().name}: {exc.details()}"}, status_code=status)


# -- signing in ------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": ""})


async def login(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("token", "")).strip()
    state = _state(request)
    try:
        who = state.tokens.authenticate(token)
    except TokenError as exc:
        return templates.TemplateResponse(
            request, "login.html", {"error": f"Not signed in: {exc}."}, status_code=401
        )
    if access.ANNOTATOR not in access.GRANTS.get(who.role, frozenset()):
        return templates.TemplateResponse(
            request,
            "login.html",
            {"error": f"The token's role ({who.role}) may not annotate."},
            status_code=403,
        )
    cookie = secrets.token_urlsafe(32)
    await state.store.start_session(
        _digest(cookie), who.name, who.role, state.settings.annotator_session_hours
    )
    logger.info("annotator %s signed in", who.name)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(state.settings.annotator_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=state.settings.annotator_secure_cookies,
    )
    return response


async def logout(request: Request) -> Response:
    cookie = request.cookies.get(COOKIE)
    if cookie:
        await _state(request).store.end_session(_digest(cookie))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# -- queues ------------------------------------------------------------------------------------


@signed_in
async def home(request: Request, session: Session) -> Response:
    store = _state(request).store
    rows = []
    for q in await store.queues():
        mine = {p.annotator: p for p in await store.progress(q.study)}.get(session.annotator)
        rows.append({"queue": q, "mine": mine})
    return templates.TemplateResponse(request, "home.html", {"session": session, "rows": rows})


def _study_param(request: Request) -> str | None:
    """The study named in the path, or None when no study can have that name (a NUL, a
    control character, 1 MB): such a path is simply not found."""
    study = str(request.path_params["study"])
    return None if not study or name_problems([("study", study)]) else study


def _minutes_since(session: Session) -> float:
    return (time.time() - session.started_at.timestamp()) / 60


@signed_in
async def study_page(request: Request, session: Session) -> Response:
    state = _state(request)
    study = _study_param(request)
    queue = None if study is None else await state.store.queue(study)
    if study is None or queue is None:
        return PlainTextResponse("No labelling queue for that study.", status_code=404)
    version, guidelines = await state.store.guidelines(study)
    context: dict[str, Any] = {
        "session": session,
        "queue": queue,
        "guidelines": guidelines,
        "guideline_version": version,
    }
    if session.warned_at is None:
        return templates.TemplateResponse(request, "warning.html", context)
    stopped = await state.enough_labels(queue)
    if stopped is not None:
        context["stopped"] = stopped
        return templates.TemplateResponse(request, "done.html", context)
    unit = await state.store.next_unit(study, session.annotator, queue.overlap)
    if unit is None:
        return templates.TemplateResponse(request, "done.html", context)
    try:
        prompts = await state.study_prompts(study)
    except grpc.aio.AioRpcError as exc:
        return _grpc_error(exc)
    prompt = prompts.get(unit.prompt_id)
    if prompt is None:
        return PlainTextResponse(
            f"Prompt {unit.prompt_id} of {study!r} has no answers any more.", status_code=409
        )
    models = sorted({a.model for a in prompt.answers})[:MAX_ANSWERS]
    seed = order_seed(study, unit.prompt_id, session.annotator)
    by_model = {a.model: a.text for a in prompt.answers}
    answers = [
        {"letter": LETTERS[i], "text": by_model[m]} for i, m in enumerate(shown_order(models, seed))
    ]
    minutes = _minutes_since(session)
    context |= {
        "unit": unit,
        "prompt": prompt.prompt,
        "answers": answers,
        "likert_points": LIKERT_POINTS,
        "break_due": minutes >= state.settings.annotator_break_minutes,
        "minutes": int(minutes),
        "progress": {p.annotator: p for p in await state.store.progress(study)}.get(
            session.annotator
        ),
    }
    return templates.TemplateResponse(request, "unit.html", context)


@signed_in
async def acknowledge_warning(request: Request, session: Session) -> Response:
    cookie = request.cookies.get(COOKIE, "")
    await _state(request).store.warned(_digest(cookie))
    study = _study_param(request)
    return RedirectResponse("/" if study is None else f"/studies/{quote(study)}", 303)


def _as_labels(raw: Any) -> dict[str, int] | None:
    if not isinstance(raw, dict):
        return None
    out = {}
    for letter, value in raw.items():
        if not isinstance(letter, str) or isinstance(value, bool) or not isinstance(value, int):
            return None
        out[letter] = value
    return out


@signed_in
async def submit(request: Request, session: Session) -> Response:
    """One prompt done: labelled, skipped or flagged (JSON from the page's script)."""
    state = _state(request)
    study = _study_param(request)
    prompt_id = int(request.path_params["prompt_id"])
    queue = None if study is None else await state.store.queue(study)
    unit = None if study is None or queue is None else await state.store.unit(study, prompt_id)
    if study is None or queue is None or unit is None:
        return JSONResponse({"error": f"no prompt {prompt_id} in that study's queue"}, 404)
    # JSON only: a form on another site cannot send it without the browser asking first.
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"error": "expected Content-Type: application/json"}, 415)
    if session.warned_at is None:
        return JSONResponse({"error": "read the content warning first"}, status_code=409)
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "expected a JSON body"}, status_code=400)
    action = body.get("action") if isinstance(body, dict) else None
    if action not in (LABELLED, SKIPPED, FLAGGED):
        return JSONResponse({"error": "action: labelled, skipped or flagged"}, status_code=400)
    version, _ = await state.store.guidelines(study)
    if action != LABELLED and await state.store.labelled_by(study, prompt_id, session.annotator):
        # The label is stored as the person's human label: a skip now would hide it here only.
        return JSONResponse(
            {"error": "you labelled this prompt already; label it again to change it"}, 409
        )
    try:
        prompts = await state.study_prompts(study)
    except grpc.aio.AioRpcError as exc:
        return _grpc_error(exc)
    prompt = prompts.get(prompt_id)
    if prompt is None:
        return JSONResponse({"error": f"prompt {prompt_id} has no answers any more"}, 409)
    models = sorted({a.model for a in prompt.answers})[:MAX_ANSWERS]
    seed = order_seed(study, prompt_id, session.annotator)
    order = shown_order(models, seed)
    letters = list(LETTERS[: len(order)])
    labels = None
    if action == LABELLED:
        given = _as_labels(body.get("labels"))
        if given is None:
            return JSONResponse({"error": "labels: {letter: integer}"}, status_code=400)
        if problems := label_problems(queue.scale, given, letters):
            return JSONResponse({"error": "; ".join(problems)}, status_code=400)
        labels = {order[letters.index(x)]: v for x, v in given.items()}
        rows = [
            metrics_pb2.AnnotationRow(
                prompt=unit.prompt_key,
                model=model,
                annotator=session.annotator,
                source="annotation app",
                **(
                    {"rank": v}
                    if queue.scale == RANK
                    else {"value": pointwise_value(queue.scale, v)}
                ),
            )
            for model, v in labels.items()
        ]
        try:
            # Replace: the same person submitting the same prompt again (a retry after a
            # lost answer) changes their label, never adds a second one.
            await state.metrics.ImportAnnotations(
                metrics_pb2.ImportAnnotationsRequest(study=study, rows=rows, replace=True),
                timeout=30,
            )
        except grpc.aio.AioRpcError as exc:
            return _grpc_error(exc)
    note = str(body.get("note", ""))[:2000].replace("\0", "")
    seconds = body.get("seconds")
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        seconds = None
    # The version the page showed (the guidelines may have changed while it was open).
    shown = body.get("guideline_version")
    if not isinstance(shown, int) or isinstance(shown, bool) or not 1 <= shown <= version:
        shown = version
    await state.store.record(
        Outcome(
            study=study,
            prompt_id=prompt_id,
            annotator=session.annotator,
            outcome=action,
            order_seed=seed,
            shown_order=order,
            labels=labels,
            guideline_version=shown,
            inclusion_probability=unit.inclusion_probability,
            note=note,
            seconds=None if seconds is None else float(seconds),
        )
    )
    OUTCOMES.labels(action).inc()
    return JSONResponse({"ok": True, "next": f"/studies/{study}"})


@signed_in
async def progress_page(request: Request, session: Session) -> Response:
    state = _state(request)
    study = _study_param(request)
    queue = None if study is None else await state.store.queue(study)
    if study is None or queue is None:
        return PlainTextResponse("No labelling queue for that study.", status_code=404)
    stopping = await state.labelling_progress(queue)
    return templates.TemplateResponse(
        request,
        "progress.html",
        {
            "session": session,
            "queue": queue,
            "people": await state.store.progress(study),
            "stopping": stopping,
            # Per-model rates name the models, flags quote people: operators only.
            "show_rates": session.role == access.OPERATOR,
            "flags": (await state.store.flagged(study) if session.role == access.OPERATOR else []),
        },
    )


# -- opening a queue (operators, e.g. `harmeval annotate open`) -----------------------------


async def open_queue(request: Request) -> Response:
    """POST /api/queues with an operator's bearer token and a JSON body: study, design
    ("all", "uniform", "active"), scale ("rank", "binary", "likert"), budget, overlap, seed,
    guidelines, and optionally a stopping rule: stop_half_width (in (0, 0.5]) and
    stop_judge (a judge of the study whose labels help; "" = people's alone)."""
    state = _state(request)
    header = request.headers.get("authorization", "")
    try:
        who = state.tokens.authenticate(header.removeprefix("Bearer ").strip())
    except TokenError as exc:
        return JSONResponse({"error": str(exc)}, status_code=401)
    if who.role != access.OPERATOR:
        return JSONResponse({"error": "opening a queue needs the operator role"}, 403)
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "expected a JSON body"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "expected a JSON object"}, status_code=400)
    study = str(body.get("study", ""))
    design = str(body.get("design", "all"))
    scale = str(body.get("scale", RANK))
    overlap = body.get("overlap", state.settings.annotator_overlap)
    guidelines = str(body.get("guidelines", ""))
    seed = body.get("seed", 0)
    # A reopened queue keeps its stopping rule unless one is given (null: none); an active
    # draw has none.
    new_stop = "stop_half_width" in body or "stop_judge" in body or design == "active"
    stop_half_width = body.get("stop_half_width")
    stop_judge: Any = body.get("stop_judge")
    stop_judge = "" if stop_judge is None else stop_judge
    problems = name_problems([("study", study)]) + (["study: empty"] if not study else [])
    if design not in ("all", *DESIGNS):
        problems.append("design: all, uniform or active")
    if scale not in SCALES:
        problems.append("scale: rank, binary or likert")
    if stop_half_width is not None:
        if (
            isinstance(stop_half_width, bool)
            or not isinstance(stop_half_width, int | float)
            or not 0 < stop_half_width <= 0.5
        ):
            problems.append("stop_half_width: a number in (0, 0.5]")
        elif design == "active":
            # The sequence needs prompts in a uniformly random order; an active draw is not.
            problems.append(
                "stop_half_width: a stopping rule needs the all or uniform design (an active "
                "queue's size comes from labels-needed in the report)"
            )
    if not isinstance(stop_judge, str) or (stop_judge and name_problems([("judge", stop_judge)])):
        problems.append("stop_judge: a judge name")
    elif stop_judge and stop_half_width is None:
        problems.append("stop_judge: only with stop_half_width")
    if not _whole(overlap, 1, MAX_OVERLAP):
        problems.append(f"overlap: a whole number from 1 to {MAX_OVERLAP}")
    if not _whole(seed, 0, 2**63 - 1):
        problems.append("seed: a whole number from 0 to 2^63 - 1")
    if "\0" in guidelines or len(guidelines) > 100_000:
        problems.append("guidelines: at most 100,000 characters, no NUL")
    if problems:
        return JSONResponse({"error": "; ".join(problems)}, status_code=400)
    state.answers.pop(study, None)  # the plan and the prompts must come from the same moment
    try:
        prompts = await state.study_prompts(study)
        if not prompts:
            return JSONResponse({"error": f"study {study!r} has no answers yet"}, 409)
        if design == "all":
            drawn = [(p.prompt.prompt_id, p.prompt.external_id, 1.0) for p in prompts.values()]
            budget = len(drawn)
        else:
            asked: Any = body.get("budget")
            if not _whole(asked, 1, len(prompts)):
                return JSONResponse(
                    {"error": f"budget: a whole number from 1 to {len(prompts)}"}, 400
                )
            budget = asked
            plan = await state.metrics.PlanLabelling(
                metrics_pb2.PlanLabellingRequest(
                    study=study, budget=budget, design=DESIGNS[design], seed=seed
                ),
                timeout=60,
            )
            drawn = [
                (p.prompt_id, p.external_id, p.inclusion_probability)
                for p in plan.prompts
                if p.selected and p.prompt_id in prompts
            ]
        if stop_judge:
            await _check_judge(state, study, stop_judge)
    except grpc.aio.AioRpcError as exc:
        return _grpc_error(exc)
    units = [
        Unit(
            prompt_id=prompt_id,
            prompt_key=external_id or prompts[prompt_id].prompt.text,
            position=position,
            inclusion_probability=pi,
        )
        for position, (prompt_id, external_id, pi) in zip(
            queue_order(len(drawn), seed), drawn, strict=True
        )
    ]
    if not units:
        return JSONResponse({"error": "the draw chose no prompt; use another seed"}, 409)
    queue = Queue(
        study=study,
        design=design,
        scale=scale,
        overlap=overlap,
        budget=budget,
        seed=seed,
        stop_half_width=None if stop_half_width is None else float(stop_half_width),
        stop_judge=str(stop_judge),
    )
    try:
        version = await state.store.open_queue(queue, units, guidelines, new_stop=new_stop)
    except QueueHasLabels as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    state.stopping.pop(study, None)
    logger.info("%s opened the queue of %s: %d prompts", who.name, study, len(units))
    return JSONResponse(
        {"study": study, "prompts": len(units), "guideline_version": version, "design": design}
    )


async def _check_judge(state: State, study: str, judge: str) -> None:
    """Refused (NOT_FOUND, FAILED_PRECONDITION) unless `judge` is one of the study's and has
    judged every answer. Asked before the queue exists, whose absence is then the answer."""
    try:
        await state.metrics.GetLabellingProgress(
            metrics_pb2.GetLabellingProgressRequest(study=study, judge=judge), timeout=30
        )
    except grpc.aio.AioRpcError as exc:
        no_queue = "has no annotation queue" in (exc.details() or "")
        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION or not no_queue:
            raise


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


async def _database_away(request: Request, exc: Exception) -> Response:
    logger.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return PlainTextResponse("The database is unavailable; try again shortly.", 503)


async def livez(request: Request) -> Response:
    """Alive: the process answers. Not the database (a database outage is /healthz's to
    report: restarting every pod would not end it)."""
    return PlainTextResponse("ok")


async def healthz(request: Request) -> Response:
    try:
        async with _state(request).store.pool.connection() as conn:
            await conn.execute("SELECT 1")
    except Exception:  # any failure means not ready; the reason stays in the log
        logger.warning("health: the database does not answer", exc_info=True)
        return PlainTextResponse("database unavailable", status_code=503)
    return PlainTextResponse("ok")


def create_app(settings: AnnotatorSettings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(open_database(settings, SCHEMA))
            metrics = channel(settings.annotator_metrics_target, settings)
            stack.push_async_callback(metrics.close)
            app.state.annotator = State(
                settings=settings,
                store=AnnotationStore(pool),
                metrics=metrics_pb2_grpc.MetricsServiceStub(metrics),
                tokens=TokenStore(settings.tokens_path),
            )
            yield

    return Starlette(
        routes=[
            Route("/", home),
            Route("/healthz", healthz),
            Route("/livez", livez),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/studies/{study}", study_page),
            Route("/studies/{study}/warning", acknowledge_warning, methods=["POST"]),
            Route("/studies/{study}/progress", progress_page),
            Route("/studies/{study}/units/{prompt_id:int}", submit, methods=["POST"]),
            Route("/api/queues", open_queue, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        lifespan=lifespan,
        exception_handlers={
            psycopg.OperationalError: _database_away,
            psycopg_pool.PoolTimeout: _database_away,
        },
    )
