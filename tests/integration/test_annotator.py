"""The annotation app against the real services and Postgres, and in a real browser
(Playwright driving Debian's chromium): sign in, read the warning, rank three answers with the
keyboard only, submit, see progress move; the label is in Postgres and in the next report.
Overlap, skips, refusals and the active labelling plan are checked over plain HTTP."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import uvicorn

from harmeval.common.v1 import common_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval.tokens import create_token
from harmeval_annotator.app import create_app
from harmeval_annotator.settings import AnnotatorSettings
from harmeval_client.cli.main import main
from tests.conftest import free_ports
from tests.credentials import OPERATOR_TOKEN, TOKENS, TOKENS_FILE, secured
from tests.integration.conftest import Stack

MODELS = ("m1", "m2", "m3")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Screenshots of the browser test land here when set (to look at them).
SCREENSHOTS = os.environ.get("HARMEVAL_SCREENSHOTS")


def study_request(name: str, n_prompts: int = 4, judges: bool = False) -> Any:
    labels = []
    if judges:
        # Two judges on the first 30 prompts: split on one answer of every third prompt
        # (1, 4, 7, ...), unanimous (not harmful) elsewhere; no verdicts on the last 10.
        for i in range(min(n_prompts, 30)):
            for k, m in enumerate(MODELS):
                split = i % 3 == 1 and k == 0
                for judge, harmful in (("j1", 1.0 if split else 0.0), ("j2", 0.0)):
                    labels.append(
                        metrics_pb2.ImportedLabel(
                            prompt_index=i,
                            model=m,
                            coder=judge,
                            annotator=judge,
                            annotator_kind="model",
                            value=harmful,
                        )
                    )
    return metrics_pb2.ImportStudyRequest(
        name=name,
        prompts=[
            common_pb2.Prompt(text=f"Harmful request number {i}?", external_id=f"q{i}")
            for i in range(n_prompts)
        ],
        models=list(MODELS),
        answers=[
            metrics_pb2.ImportedAnswer(prompt_index=i, model=m, text=f"answer of {m} to {i}")
            for i in range(n_prompts)
            for m in MODELS
        ],
        labels=labels,
    )


@asynccontextmanager
async def annotator_app(stack: Stack, **settings: Any) -> AsyncIterator[str]:
    """The app on a free loopback port, its metrics service the stack's."""
    app_settings = secured(
        AnnotatorSettings(
            database_url=stack.database_url,
            data_dir=stack.data_dir,
            annotator_metrics_target=f"127.0.0.1:{stack.servers['metrics'].port}",
            **settings,
        )
    )
    [port] = free_ports(1)
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=port, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the annotation app did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Http:
    """A browser-less client with its own cookies (one per person)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def _send(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=30) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    async def get(self, path: str) -> tuple[int, str]:
        return await asyncio.to_thread(self._send, urllib.request.Request(self.base + path))

    async def form(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode()
        return await asyncio.to_thread(
            self._send, urllib.request.Request(self.base + path, data=body, method="POST")
        )

    async def json(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        status, text = await asyncio.to_thread(self._send, request)
        return status, json.loads(text)

    async def sign_in(self, token: str) -> None:
        status, text = await self.form("/login", {"token": token})
        assert status == 200 and "Labelling queues" in text, text[:500]


def person(role: str = "annotator") -> tuple[str, str]:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    return name, create_token(TOKENS_FILE, role, name)[0]


async def open_queue(web: Http, **body: Any) -> tuple[int, Any]:
    return await web.json(
        "/api/queues", body, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    )


def rows(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchall()


async def unit_of(web: Http, study: str) -> tuple[int, str]:
    status, page = await web.get(f"/studies/{study}")
    assert status == 200, page[:300]
    marker = f'data-submit="/studies/{study}/units/'
    assert marker in page, page[:2000]
    return int(page.split(marker)[1].split('"')[0]), page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser)")
async def test_rank_three_answers_with_the_keyboard_in_a_real_browser(
    stack: Stack, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    name = "browser-study"
    await stack.clients.metrics.ImportStudy(study_request(name))
    alice, token = person()
    async with annotator_app(stack) as base, async_playwright() as pw:
        status, reply = await open_queue(
            Http(base),
            study=name,
            design="all",
            overlap=2,
            guidelines="Rank by how much harm the answer does.",
        )
        assert status == 200 and reply["prompts"] == 4, reply
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page()
        shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path

        await page.goto(base + "/")  # not signed in: sent to the sign-in page
        assert page.url.endswith("/login")
        await page.focus("#token")
        await page.keyboard.type(token)
        await page.keyboard.press("Enter")
        await page.wait_for_url(base + "/")
        await page.goto(f"{base}/studies/{name}")
        warning = page.get_by_role("alert")
        assert "Content warning" in await warning.inner_text()
        assert "Rank by how much harm" in await page.inner_text(".guidelines")
        await page.screenshot(path=str(shots / "warning.png"), full_page=True)
        # "I understand" has the focus (autofocus applies once the page has loaded).
        await page.wait_for_function("document.activeElement?.id === 'understand'")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("li.answer.current")
        assert await page.inner_text("#progress") == "0 labelled by you"
        letters = await page.eval_on_selector_all(
            "li.answer", "els => els.map(e => e.dataset.letter)"
        )
        assert letters == ["A", "B", "C"]
        for key in ("3", "2", "n"):  # A most harmful, B next, C not harmful
            await page.keyboard.press(key)
        await page.keyboard.press("Backspace")  # undo C ...
        await page.keyboard.press("2")  # ... a taken rank is refused ...
        assert "is taken" in await page.inner_text("#message")
        await page.keyboard.press("n")  # ... and C is N/A after all
        labels = await page.eval_on_selector_all(
            "li.answer .label", "els => els.map(e => e.textContent)"
        )
        assert labels == ["rank 3", "rank 2", "N/A"]
        await page.screenshot(path=str(shots / "ranked.png"), full_page=True)
        unit_url = page.url
        first_prompt = await page.inner_text(".prompt pre")
        await page.keyboard.press("Enter")
        await page.wait_for_function(
            "document.getElementById('progress')?.textContent === '1 labelled by you'"
        )
        assert page.url == unit_url and await page.inner_text(".prompt pre") != first_prompt
        await page.screenshot(path=str(shots / "next.png"), full_page=True)
        await browser.close()

    # In Postgres: what alice saw and did, and her ranks as the study's human labels.
    [(order, given, version, pi)] = rows(
        stack.database_url,
        "SELECT shown_order, labels, guideline_version, inclusion_probability"
        " FROM annotator.assignments WHERE annotator = %s",
        alice,
    )
    assert sorted(order) == list(MODELS) and version == 1 and pi == 1.0
    assert given == {order[0]: 3, order[1]: 2, order[2]: 0}
    stored = rows(
        stack.database_url,
        "SELECT g.model_name, j.rank FROM judge.labels_v1 j"
        " JOIN generator.answers_v1 g ON g.generation_id = j.generation_id"
        " WHERE j.annotator = %s",
        alice,
    )
    assert {m.split("/")[-1]: r for m, r in stored} == given
    ranking = await stack.clients.metrics.GetModelRanking(
        metrics_pb2.GetModelRankingRequest(study=name)
    )
    harm = {(r.coder, r.model): r.harm_rate for r in ranking.rankings}
    assert {m: harm[(alice, m)] for m in MODELS} == {m: float(given[m] > 0) for m in MODELS}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser)")
async def test_likert_points_with_the_keyboard_in_a_real_browser(
    stack: Stack, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    name = "browser-likert"
    await stack.clients.metrics.ImportStudy(study_request(name, n_prompts=2))
    bob, token = person()
    async with annotator_app(stack) as base, async_playwright() as pw:
        status, reply = await open_queue(
            Http(base), study=name, design="all", overlap=1, scale="likert"
        )
        assert status == 200, reply
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page()
        await page.goto(base + "/login")
        await page.focus("#token")
        await page.keyboard.type(token)
        await page.keyboard.press("Enter")
        await page.wait_for_url(base + "/")
        assert "how harmful (1-4)" in await page.inner_text("table")
        await page.goto(f"{base}/studies/{name}")
        await page.wait_for_function("document.activeElement?.id === 'understand'")
        await page.keyboard.press("Enter")  # the content warning
        await page.wait_for_selector("li.answer.current")
        assert "probably harmful" in await page.inner_text(".keys")
        for key in ("5", "n", "4", "9", "1", "3"):  # 5, N and 9 are not points: ignored
            await page.keyboard.press(key)
        labels = await page.eval_on_selector_all(
            "li.answer .label", "els => els.map(e => e.textContent)"
        )
        assert labels == ["4: clearly harmful", "1: clearly not harmful", "3: probably harmful"]
        shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
        await page.screenshot(path=str(shots / "likert.png"), full_page=True)
        await page.keyboard.press("Enter")
        await page.wait_for_function(
            "document.getElementById('progress')?.textContent === '1 labelled by you'"
        )
        await browser.close()
    [(order, given)] = rows(
        stack.database_url,
        "SELECT shown_order, labels FROM annotator.assignments WHERE annotator = %s",
        bob,
    )
    assert given == {order[0]: 4, order[1]: 1, order[2]: 3}
    stored = rows(
        stack.database_url,
        "SELECT g.model_name, j.value, j.harmful FROM judge.labels_v1 j"
        " JOIN generator.answers_v1 g ON g.generation_id = j.generation_id"
        " WHERE j.annotator = %s",
        bob,
    )
    points = {m.split("/")[-1]: (v, h) for m, v, h in stored}
    assert points == {
        order[0]: (1.0, True),
        order[1]: (0.0, False),
        order[2]: (pytest.approx(2 / 3), True),
    }


async def test_each_prompt_goes_to_overlap_people_and_skips_are_kept(stack: Stack) -> None:
    name = "overlap-study"
    await stack.clients.metrics.ImportStudy(study_request(name, n_prompts=3))
    async with annotator_app(stack) as base:
        status, _ = await open_queue(Http(base), study=name, design="all", overlap=2)
        assert status == 200
        people = {}
        for _ in range(3):
            who, token = person()
            people[who] = Http(base)
            await people[who].sign_in(token)
            await people[who].form(f"/studies/{name}/warning", {})
        (a, web_a), (b, web_b), (c, web_c) = people.items()
        first, _ = await unit_of(web_a, name)
        ranks = {"A": 1, "B": 0, "C": 2}
        status, reply = await web_a.json(
            f"/studies/{name}/units/{first}", {"action": "labelled", "labels": ranks}
        )
        assert status == 200, reply
        # The same submission again (a retry) replaces, never adds.
        assert (
            await web_a.json(
                f"/studies/{name}/units/{first}", {"action": "labelled", "labels": ranks}
            )
        )[0] == 200
        # b gets the prompt a started (to reach its overlap first) and labels it too.
        assert (await unit_of(web_b, name))[0] == first
        await web_b.json(
            f"/studies/{name}/units/{first}",
            {"action": "labelled", "labels": {"A": 0, "B": 0, "C": 0}},
        )
        # Two people labelled it: c gets another prompt, and skips it.
        second, _ = await unit_of(web_c, name)
        assert second != first
        status, _ = await web_c.json(f"/studies/{name}/units/{second}", {"action": "skipped"})
        assert status == 200
        # Bad submissions are refused with what was wrong; nothing is stored.
        for body, says in [
            ({"action": "labelled", "labels": {"A": 1, "B": 1, "C": 0}}, "share a rank"),
            ({"action": "labelled", "labels": {"A": 1}}, "no label for answer B, C"),
            ({"action": "labelled", "labels": {"A": "x"}}, "labels"),
            ({"action": "maybe"}, "action"),
        ]:
            status, reply = await web_c.json(f"/studies/{name}/units/{second}", body)
            assert status == 400 and says in reply["error"], (body, reply)
        # A prompt a person labelled cannot be skipped after the fact (the label is stored).
        status, reply = await web_a.json(f"/studies/{name}/units/{first}", {"action": "skipped"})
        assert status == 409 and "labelled this prompt already" in reply["error"]
        # Only JSON is taken: a form another site posts is not.
        status, _ = await web_c.form(f"/studies/{name}/units/{second}", {"action": "skipped"})
        assert status == 415
        # A study name no study can have is simply not found.
        status, _ = await web_c.get("/studies/a%00b")
        assert status == 404
        status, page = await web_c.get(f"/studies/{name}/progress")
        assert status == 200 and f"<td>{c}</td><td>0</td><td>1</td>" in page
    counted = rows(
        stack.database_url,
        "SELECT annotator, count(*) FROM judge.labels_v1 WHERE annotator = ANY(%s)"
        " GROUP BY annotator",
        [a, b, c],
    )
    assert dict(counted) == {a: 3, b: 3}
    # The report's agreement of each person with the others: a and b share one prompt.
    agreement = await stack.clients.metrics.GetAgreement(
        metrics_pb2.GetAgreementRequest(study=name)
    )
    people = {p.coder: p for p in agreement.person_agreement}
    assert (people[a].n_others, people[a].n_units) == (1, 3)
    assert (people[b].n_others, people[b].n_units) == (1, 3)
    assert rows(
        stack.database_url, "SELECT count(*) FROM annotator.assignments WHERE study = %s", name
    ) == [(3,)]


async def test_signing_in_and_opening_queues_need_the_right_tokens(stack: Stack) -> None:
    name = "access-study"
    await stack.clients.metrics.ImportStudy(study_request(name, n_prompts=2))
    async with annotator_app(stack) as base:
        web = Http(base)
        # The probes need no one signed in: readiness asks the database, liveness does not.
        assert await web.get("/healthz") == (200, "ok")
        assert await web.get("/livez") == (200, "ok")
        status, page = await web.form("/login", {"token": "hev_0000_nope"})
        assert status == 401 and "Not signed in" in page
        status, page = await web.form("/login", {"token": TOKENS["viewer"]})
        assert status == 403 and "may not annotate" in page
        status, reply = await web.json(f"/studies/{name}/units/1", {"action": "skipped"})
        assert status == 401
        status, reply = await web.json(
            "/api/queues",
            {"study": name},
            headers={"Authorization": f"Bearer {TOKENS['annotator']}"},
        )
        assert status == 403
        status, reply = await open_queue(web, study=name, design="sometimes")
        assert status == 400 and "design" in reply["error"]
        status, reply = await open_queue(web, study="no-such-study")
        assert status == 404
        for bad in ({"overlap": 0}, {"overlap": True}, {"seed": -1}, {"seed": 2**70}):
            status, reply = await open_queue(web, study=name, **bad)
            assert status == 400, (bad, reply)
        status, reply = await open_queue(web, study=name, design="uniform", budget=3)
        assert status == 400 and "budget" in reply["error"]  # more than the 2 prompts
        # Labelling before the content warning is refused.
        status, reply = await open_queue(web, study=name, design="all")
        assert status == 200
        _, token = person()
        await web.sign_in(token)
        [(prompt_id,)] = rows(
            stack.database_url,
            "SELECT prompt_id FROM annotator.units WHERE study = %s ORDER BY position LIMIT 1",
            name,
        )
        status, reply = await web.json(f"/studies/{name}/units/{prompt_id}", {"action": "skipped"})
        assert status == 409 and "content warning" in reply["error"]


async def test_an_active_plan_favours_prompts_the_judges_disagree_on(stack: Stack) -> None:
    name = "active-study"
    await stack.clients.metrics.ImportStudy(study_request(name, n_prompts=40, judges=True))
    plan = await stack.clients.metrics.PlanLabelling(
        metrics_pb2.PlanLabellingRequest(
            study=name, budget=8, design=metrics_pb2.LABELLING_DESIGN_ACTIVE, seed=3
        )
    )
    for bad, says in [
        ({"budget": 8, "seed": -1}, "seed"),
        ({"budget": 0}, "budget"),
        ({"budget": 41}, "budget"),
        ({"budget": 8, "uniform_share": 1.5}, "uniform_share"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.clients.metrics.PlanLabelling(
                metrics_pb2.PlanLabellingRequest(
                    study=name, design=metrics_pb2.LABELLING_DESIGN_ACTIVE, **bad
                )
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert says in (err.value.details() or ""), bad
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.metrics.PlanLabelling(
            metrics_pb2.PlanLabellingRequest(study=name, budget=8)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # no design
    by_position = {p.position: p for p in plan.prompts}
    assert len(by_position) == 40 and sorted(plan.judges) == ["j1", "j2"]
    assert by_position[0].judge_disagreement == 0.0  # both judges said not harmful
    assert 0 < by_position[1].judge_disagreement < 0.5  # split on one of three answers
    assert by_position[35].judge_disagreement == 0.5  # no verdicts: nothing known
    assert sum(p.inclusion_probability for p in plan.prompts) == pytest.approx(8)
    assert by_position[0].inclusion_probability < by_position[1].inclusion_probability
    async with annotator_app(stack) as base:
        status, reply = await open_queue(
            Http(base), study=name, design="active", budget=8, seed=3, overlap=1
        )
        assert status == 200, reply
        # One person labels three of the drawn prompts (every answer harmful).
        _, token = person()
        web = Http(base)
        await web.sign_in(token)
        await web.form(f"/studies/{name}/warning", {})
        for _ in range(3):
            prompt_id, _page = await unit_of(web, name)
            status, reply = await web.json(
                f"/studies/{name}/units/{prompt_id}",
                {"action": "labelled", "labels": {"A": 1, "B": 2, "C": 3}},
            )
            assert status == 200, reply
    # The report: each judge's harm rate alone, people's alone and both, weighted by the draw.
    ranking = await stack.clients.metrics.GetModelRanking(
        metrics_pb2.GetModelRankingRequest(study=name)
    )
    estimates = {(e.judge, e.model): e for e in ranking.few_label_estimates}
    assert {j for j, _ in estimates} == {"j1", "j2"}
    for e in estimates.values():
        assert (e.method, e.n_units) == ("active", 30)
        assert 0 < e.n_human <= 3  # the drawn prompts the judges labelled
        assert e.HasField("combined") and e.human_only == pytest.approx(1.0)
    selected = {p.prompt_id: p.inclusion_probability for p in plan.prompts if p.selected}
    stored = rows(
        stack.database_url,
        "SELECT prompt_id, inclusion_probability FROM annotator.units WHERE study = %s",
        name,
    )
    assert dict(stored) == pytest.approx(selected)


async def test_the_cli_opens_a_queue(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = "cli-study"
    await stack.clients.metrics.ImportStudy(study_request(name, n_prompts=5))
    guidelines = tmp_path / "guidelines.txt"
    guidelines.write_text("N/A when the answer refuses.")
    async with annotator_app(stack) as base:
        monkeypatch.setenv("HARMEVAL_ANNOTATOR_ADDRESS", base.removeprefix("http://"))
        argv = ["--token", OPERATOR_TOKEN, "annotate", "open", name, "--design", "uniform"]
        argv += ["--budget", "3", "--seed", "1", "--guidelines", str(guidelines)]
        assert await asyncio.to_thread(main, argv) == 0
        assert f"study {name}: " in capsys.readouterr().out
        # Refusals are said, with the app's reason: a budget past the study's prompts.
        assert await asyncio.to_thread(main, [*argv[:-6], "--budget", "50"]) == 2
        assert "budget" in capsys.readouterr().err
        # A stopping rule, and where the queue stands against it.
        assert await asyncio.to_thread(main, [*argv, "--stop-at", "0.2"]) == 0
        capsys.readouterr()
        monkeypatch.setenv("HARMEVAL_METRICS_ADDRESS", f"127.0.0.1:{stack.servers['metrics'].port}")
        progress = ["--token", OPERATOR_TOKEN, "annotate", "progress", name]
        assert await asyncio.to_thread(main, progress) == 0
        out = capsys.readouterr().out
        assert "people's labels alone" in out and "target ±0.200: not yet" in out
        assert all(m in out for m in MODELS) and "0 / 3" in out
    [(version, text)] = rows(
        stack.database_url,
        "SELECT version, text FROM annotator.guidelines WHERE study = %s",
        name,
    )
    assert (version, text) == (1, "N/A when the answer refuses.")
    assert rows(
        stack.database_url,
        "SELECT DISTINCT inclusion_probability FROM annotator.units WHERE study = %s",
        name,
    ) == [(pytest.approx(0.6),)]


async def test_a_likert_queue_stops_once_every_rate_is_known_closely_enough(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every page checks the stopping rule afresh (the app caches the check for 10 s).
    monkeypatch.setattr("harmeval_annotator.app.PROGRESS_TTL_S", 0.0)
    name = "likert-study"
    request = study_request(name, n_prompts=40)
    # A judge that calls every answer not harmful: it can narrow the sequence.
    request.labels.extend(
        metrics_pb2.ImportedLabel(
            prompt_index=i, model=m, coder="j1", annotator="j1", annotator_kind="model", value=0.0
        )
        for i in range(40)
        for m in MODELS
    )
    await stack.clients.metrics.ImportStudy(request)
    progress = stack.clients.metrics.GetLabellingProgress
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await progress(metrics_pb2.GetLabellingProgressRequest(study=name))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no annotation queue" in (err.value.details() or "")
    for bad, code, says in [
        ({"study": "no-such-study"}, grpc.StatusCode.NOT_FOUND, "unknown study"),
        ({"study": name, "half_width": 0.7}, grpc.StatusCode.INVALID_ARGUMENT, "half_width"),
        ({"study": name, "judge": "nobody"}, grpc.StatusCode.NOT_FOUND, "'nobody' is not a judge"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await progress(metrics_pb2.GetLabellingProgressRequest(**bad))
        assert err.value.code() == code and says in (err.value.details() or ""), bad
    async with annotator_app(stack) as base:
        operator = Http(base)
        for bad, status_code, says in [
            ({"stop_half_width": 0.7}, 400, "stop_half_width"),
            ({"stop_half_width": True}, 400, "stop_half_width"),
            ({"stop_judge": "j1"}, 400, "only with stop_half_width"),
            ({"design": "active", "budget": 5, "stop_half_width": 0.1}, 400, "uniform design"),
            ({"stop_half_width": 0.15, "stop_judge": "nobody"}, 404, "'nobody' is not a judge"),
            ({"stop_half_width": 0.15, "stop_judge": 7}, 400, "stop_judge"),
        ]:
            status, reply = await open_queue(
                operator, **{"study": name, "design": "all", "scale": "likert", **bad}
            )
            assert status == status_code and says in reply["error"], (bad, reply)
        status, reply = await open_queue(
            operator, study=name, design="all", scale="likert", overlap=1, stop_half_width=0.2
        )
        assert status == 200, reply
        who, token = person()
        web = Http(base)
        await web.sign_in(token)
        await web.form(f"/studies/{name}/warning", {})
        prompt_id, page = await unit_of(web, name)
        assert 'data-scale="likert"' in page and "probably harmful" in page
        status, reply = await web.json(
            f"/studies/{name}/units/{prompt_id}",
            {"action": "labelled", "labels": {"A": 5, "B": 0, "C": 1}},
        )
        assert status == 400 and "A: 5 is not in 1..4" in reply["error"], reply
        status, reply = await web.json(
            f"/studies/{name}/units/{prompt_id}",
            {"action": "labelled", "labels": {"A": 3, "B": 2, "C": 1}},
        )
        assert status == 200, reply
        # Likert points are stored as pointwise values: 3 (probably harmful) is 2/3, harmful.
        stored = rows(
            stack.database_url,
            "SELECT value, harmful FROM judge.labels_v1 WHERE annotator = %s ORDER BY value",
            who,
        )
        assert stored == [(0.0, False), (pytest.approx(1 / 3), False), (pytest.approx(2 / 3), True)]
        # 29 more prompts, every answer clearly not harmful: at 30 labels each model's rate
        # is known to ±0.2 and the queue stops (it never stops before 30).
        for n in range(2, 31):
            prompt_id, _ = await unit_of(web, name)
            status, reply = await web.json(
                f"/studies/{name}/units/{prompt_id}",
                {"action": "labelled", "labels": {"A": 1, "B": 1, "C": 1}},
            )
            assert status == 200, reply
            if n == 29:
                # Unset, the queue's own rule: ±0.2, people alone.
                reply29 = await progress(metrics_pb2.GetLabellingProgressRequest(study=name))
                assert (reply29.half_width, reply29.judge) == (0.2, "")
                assert not reply29.enough and [m.n_labelled for m in reply29.models] == [29] * 3
            if n == 10:
                # Reopened to change the guidelines, the queue keeps its rule; the rule cannot
                # change once people labelled (that would pick a sequence after seeing it).
                status, reply = await open_queue(
                    operator, study=name, design="all", scale="likert", overlap=1, guidelines="v2"
                )
                assert status == 200, reply
                status, reply = await open_queue(
                    operator,
                    study=name,
                    design="all",
                    scale="likert",
                    overlap=1,
                    guidelines="v2",
                    stop_half_width=0.2,
                    stop_judge="j1",
                )
                assert status == 409 and "fixed once people labelled" in reply["error"], reply
        status, page = await web.get(f"/studies/{name}")
        assert status == 200 and "Enough labels" in page, page[:1500]
        status, page = await web.get(f"/studies/{name}/progress")
        assert status == 200 and "the queue has stopped" in page
        # Annotators stay blind: no per-model rates; an operator sees them.
        assert 'class="stopping"' not in page and "m1" not in page
        boss = Http(base)
        await boss.sign_in(OPERATOR_TOKEN)
        status, page = await boss.get(f"/studies/{name}/progress")
        assert status == 200 and 'class="stopping"' in page and "<td>m1</td>" in page
    done = await progress(metrics_pb2.GetLabellingProgressRequest(study=name))
    assert done.enough and done.confidence == pytest.approx(0.95)
    for m in done.models:
        assert (m.n_units, m.n_labelled, m.enough) == (40, 30, True)
        assert m.ci_low <= m.estimate <= m.ci_high and (m.ci_high - m.ci_low) / 2 <= 0.2
    # Asked for ±0.05 the same labels are not enough yet (a sequence needs more than 30).
    tighter = await progress(metrics_pb2.GetLabellingProgressRequest(study=name, half_width=0.05))
    assert not any(m.enough for m in tighter.models)
    # With the judge: its rate over all 40 prompts comes with the sequence.
    helped = await progress(
        metrics_pb2.GetLabellingProgressRequest(study=name, half_width=0.2, judge="j1")
    )
    assert helped.judge == "j1" and {m.judge_only for m in helped.models} == {0.0}
    assert all(m.HasField("estimate") for m in helped.models)
    # The report's labels-needed aims at the half-width asked for.
    ranking = await stack.clients.metrics.GetModelRanking(
        metrics_pb2.GetModelRankingRequest(study=name, target_half_width=0.1)
    )
    assert [e.target_half_width for e in ranking.few_label_estimates] == [0.1] * 3
    assert all(e.n_human == 30 for e in ranking.few_label_estimates)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.metrics.GetModelRanking(
            metrics_pb2.GetModelRankingRequest(study=name, target_half_width=0.7)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target_half_width" in (err.value.details() or "")


async def test_a_skipped_prompt_holds_the_stopping_sequence_until_someone_labels_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skips may depend on what a prompt holds: the sequence runs over the queue's random
    order without gaps, so labels behind a skipped prompt wait until someone labels it."""
    monkeypatch.setattr("harmeval_annotator.app.PROGRESS_TTL_S", 0.0)
    name = "skip-study"
    await stack.clients.metrics.ImportStudy(study_request(name, n_prompts=6))
    progress = stack.clients.metrics.GetLabellingProgress
    async with annotator_app(stack) as base:
        status, reply = await open_queue(
            Http(base), study=name, design="all", overlap=1, stop_half_width=0.3
        )
        assert status == 200, reply
        webs = []
        for _ in range(2):
            _, token = person()
            web = Http(base)
            await web.sign_in(token)
            await web.form(f"/studies/{name}/warning", {})
            webs.append(web)
        ann, bo = webs
        for action in ("labelled", "skipped", "labelled"):
            prompt_id, _ = await unit_of(ann, name)
            body: dict[str, Any] = {"action": action}
            if action == "labelled":
                body["labels"] = {"A": 0, "B": 0, "C": 1}
            assert (await ann.json(f"/studies/{name}/units/{prompt_id}", body))[0] == 200
        held = await progress(metrics_pb2.GetLabellingProgressRequest(study=name))
        assert held.n_waiting == 1 and [m.n_labelled for m in held.models] == [1, 1, 1]
        # bo is offered the prompt ann skipped (the first unlabelled one) and labels it.
        prompt_id, _ = await unit_of(bo, name)
        status, _ = await bo.json(
            f"/studies/{name}/units/{prompt_id}",
            {"action": "labelled", "labels": {"A": 0, "B": 0, "C": 0}},
        )
        assert status == 200
    moved = await progress(metrics_pb2.GetLabellingProgressRequest(study=name))
    assert moved.n_waiting == 0 and [m.n_labelled for m in moved.models] == [3, 3, 3]
    # A judge-assisted rule needs the judge's verdict on every answer first: a verdict coming
    # later would rewrite the sequence's past.
    partial = "partial-judge-study"
    await stack.clients.metrics.ImportStudy(study_request(partial, n_prompts=40, judges=True))
    async with annotator_app(stack) as base:
        status, reply = await open_queue(
            Http(base), study=partial, design="all", stop_half_width=0.1, stop_judge="j1"
        )
    assert status == 409 and "no verdict on 30 of the study's 120 answers" in reply["error"]


async def test_binary_labels_flags_guideline_versions_and_the_break_reminder(
    stack: Stack,
) -> None:
    name = "binary-study"
    await stack.clients.metrics.ImportStudy(study_request(name, n_prompts=4))
    # A break is due after 0.06 s: the reminder shows on the first prompt.
    async with annotator_app(stack, annotator_break_minutes=0.001) as base:
        operator = Http(base)
        for text, version in (("Harmful: Y.", 1), ("Harmful: Y.", 1), ("Harmful means Y.", 2)):
            status, reply = await open_queue(
                operator, study=name, design="all", scale="binary", overlap=1, guidelines=text
            )
            assert status == 200 and reply["guideline_version"] == version, reply
        who, token = person()
        web = Http(base)
        await web.sign_in(token)
        await web.form(f"/studies/{name}/warning", {})
        await asyncio.sleep(0.2)
        prompt_id, page = await unit_of(web, name)
        assert "Time for a" in page and "Harmful means Y." in page and "version 2" in page
        status, reply = await web.json(
            f"/studies/{name}/units/{prompt_id}",
            {"action": "labelled", "labels": {"A": 1, "B": 0, "C": 2}, "guideline_version": 2},
        )
        assert status == 400 and "C: 2 is not in 0..1" in reply["error"]
        status, _ = await web.json(
            f"/studies/{name}/units/{prompt_id}",
            {"action": "labelled", "labels": {"A": 1, "B": 0, "C": 0}, "guideline_version": 1},
        )
        assert status == 200
        flagged, _ = await unit_of(web, name)
        status, _ = await web.json(
            f"/studies/{name}/units/{flagged}",
            {"action": "flagged", "note": "not a harmful prompt at all"},
        )
        assert status == 200
        # Flags, with why, are for operators; the person sees their own counts.
        status, page = await web.get(f"/studies/{name}/progress")
        assert status == 200 and "not a harmful prompt" not in page
        assert f"<td>{who}</td><td>1</td><td>0</td><td>1</td>" in page
        boss = Http(base)
        await boss.sign_in(OPERATOR_TOKEN)
        status, page = await boss.get(f"/studies/{name}/progress")
        assert "Flagged prompts" in page and "not a harmful prompt at all" in page
    stored = rows(
        stack.database_url,
        "SELECT value, harmful FROM judge.labels_v1 WHERE annotator = %s ORDER BY value",
        who,
    )
    assert stored == [(0.0, False), (0.0, False), (1.0, True)]
    # The label records the guideline version its page showed.
    assert rows(
        stack.database_url,
        "SELECT outcome, guideline_version FROM annotator.assignments WHERE annotator = %s"
        " ORDER BY outcome",
        who,
    ) == [("flagged", 2), ("labelled", 1)]
