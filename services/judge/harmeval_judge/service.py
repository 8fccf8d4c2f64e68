"""JudgeService: judges answers with a registry of judges and stores every verdict once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import grpc
from prometheus_client import Counter

from harmeval.common.v1 import common_pb2
from harmeval.db import PublishedViewMissing
from harmeval.judge.v1 import judge_pb2, judge_pb2_grpc
from harmeval.params import text_sha256
from harmeval.server import Servicer, ServiceSpec, require_ready
from harmeval.validation import listed, name_problems
from harmeval.verdicts import OK, UNSCORABLE
from harmeval_judge.definitions import DefinitionError, JudgeRegistry, parse_definition
from harmeval_judge.judges import (
    LISTWISE,
    PANEL,
    POINTWISE,
    Judge,
    JudgeInput,
    JudgeInputError,
    Verdict,
)
from harmeval_judge.limits import BudgetExceeded
from harmeval_judge.llm_client import JudgeBackendError, JudgeRequestRejected
from harmeval_judge.settings import JudgeSettings
from harmeval_judge.store import (
    SCHEMA,
    ImportedLabel,
    JudgeNameTaken,
    JudgeOwned,
    JudgeRecord,
    JudgeStore,
    LabelsAlreadyStored,
    StoredJudgment,
    judge_config_hash,
)

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

# The message-size limit bounds a batch too; this keeps one request from holding the service.
MAX_BATCH_ITEMS = 4096
MAX_REFERENCES = 16

VERDICTS = Counter(
    "harmeval_judge_verdicts",
    "New verdicts (stored ones returned again are not counted), by status and reason.",
    ["judge", "status", "reason"],
)

SPEC = ServiceSpec(
    name="judge",
    descriptor=judge_pb2.DESCRIPTOR.services_by_name["JudgeService"],
    add_to_server=judge_pb2_grpc.add_JudgeServiceServicer_to_server,
)

_KINDS = {LISTWISE: judge_pb2.JUDGE_KIND_LISTWISE, PANEL: judge_pb2.JUDGE_KIND_PANEL}
_STATUS = {
    OK: common_pb2.JUDGMENT_STATUS_OK,
    UNSCORABLE: common_pb2.JUDGMENT_STATUS_UNSCORABLE,
}
_ANNOTATOR_KINDS = {
    judge_pb2.ANNOTATOR_KIND_HUMAN: "human",
    judge_pb2.ANNOTATOR_KIND_MODEL: "model",
}


def _import_problems(request: judge_pb2.ImportJudgmentsRequest) -> list[str]:
    """Everything wrong with an import, each naming its label, so a caller fixes all at once."""
    problems: list[str] = []
    seen: dict[tuple[str, int], int] = {}
    for i, j in enumerate(request.judgments):
        where = f"judgments[{i}]"
        if j.generation_id <= 0:
            problems.append(f"{where}.generation_id: {j.generation_id} is not an answer id")
        if not j.annotator.strip():
            problems.append(f"{where}.annotator: empty")
        if not j.protocol.strip():
            problems.append(f"{where}.protocol: empty")
        if j.annotator_kind not in _ANNOTATOR_KINDS:
            problems.append(f"{where}.annotator_kind: expected HUMAN or MODEL")
        problems += name_problems(
            (f"{where}.{field}", getattr(j, field)) for field in ("annotator", "coder", "protocol")
        )
        if j.unscorable == j.HasField("harmful"):
            problems.append(
                f"{where}: an unscorable label has no harm label, a scorable one needs one"
            )
        if j.HasField("rank") and j.rank < 0:
            problems.append(f"{where}.rank: {j.rank} is negative (0 = not harmful)")
        key = (j.annotator, j.generation_id)
        if key in seen:
            problems.append(f"{where}: same annotator and answer as judgments[{seen[key]}]")
        seen.setdefault(key, i)
    if request.replace_generation_ids and not request.replace_protocol:
        problems.append("replace_protocol: required with replace_generation_ids")
    return problems


class ItemRejected(ValueError):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def to_proto(
    judge: Judge, generation_id: int, v: Verdict | StoredJudgment, cached: bool
) -> common_pb2.Judgment:
    j = common_pb2.Judgment(
        generation_id=generation_id,
        judge=judge.name,
        protocol=judge.protocol,
        status=_STATUS[v.status],
        harmful=bool(v.harmful),
        value=v.value or 0.0,
        raw_output=v.raw_output,
        reason=v.reason,
        cached=cached,
        prompt_tokens=v.prompt_tokens,
        completion_tokens=v.completion_tokens,
        cost_usd=v.cost_usd,
        order_sensitive=v.order_sensitive,
        details_json=json.dumps(v.details, sort_keys=True) if v.details else "",
    )
    if v.rank is not None:
        j.rank = v.rank
    return j


def info(judge: Judge) -> judge_pb2.JudgeInfo:
    return judge_pb2.JudgeInfo(
        name=judge.name,
        family=judge.family,
        kind=_KINDS.get(judge.kind, judge_pb2.JUDGE_KIND_POINTWISE),
        protocol=judge.protocol,
        max_answers=judge.max_answers,
        settings=judge.config(),
    )


class JudgeServicer(judge_pb2_grpc.JudgeServiceServicer, Servicer):
    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self.registry = JudgeRegistry(settings)
        self.registry.add_builtin()
        self.records: dict[str, JudgeRecord] = {}
        self.repo: JudgeStore | None = None

    @property
    def judges(self) -> dict[str, Judge]:
        return self.registry.judges

    async def startup(self, stack: AsyncExitStack) -> None:
        repo = JudgeStore(await self.database(stack, self.settings, SCHEMA))
        stack.push_async_callback(self.registry.close)
        for judge in self.judges.values():
            self.records[judge.name] = await repo.upsert_judge(
                judge.name, judge.family, judge.protocol, dict(judge.config())
            )
        # Ready (RPCs stop answering UNAVAILABLE) only once every built-in judge is stored.
        self.repo = repo

    async def ListJudges(
        self, request: judge_pb2.ListJudgesRequest, context: Context
    ) -> judge_pb2.ListJudgesResponse:
        return judge_pb2.ListJudgesResponse(judges=[info(j) for j in self.judges.values()])

    async def DefineJudge(
        self, request: judge_pb2.DefineJudgeRequest, context: Context
    ) -> judge_pb2.DefineJudgeResponse:
        repo = await require_ready(self.repo, context, "judge database")
        if problems := name_problems([("study", request.study)]):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, listed(problems))
        try:
            # Off the event loop: the pure-Python YAML parser takes up to a second on 64 kB.
            definition = await asyncio.to_thread(parse_definition, request.definition)
            if "examples" in definition:
                # A path on this server: a caller could make it open any file it can read.
                raise DefinitionError(
                    "examples: a file of few-shot examples can be named only in the operator's "
                    "judges file (HARMEVAL_JUDGE_JUDGES_FILE), not in a definition sent over "
                    "the API"
                )
            judge = self.registry.build(definition)
        except DefinitionError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        config = dict(judge.config())
        if judge.name in self.registry.builtin:
            builtin = self.judges[judge.name]
            # The same definition again is no change; any other would replace a built-in.
            digest = judge_config_hash(judge.family, judge.protocol, config)
            if digest == self.records[judge.name].config_hash:
                return judge_pb2.DefineJudgeResponse(judge=info(builtin))
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"judge {judge.name!r} is built in (the service's settings or judges file): "
                "no definition replaces it; choose another name",
            )
        if await repo.is_human(judge.name):
            # A judge of that name would take over the person's labels as its verdicts.
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"judge {judge.name!r}: a person labels under that name; choose another",
            )
        try:
            if request.validate_only:
                await repo.check_definable(
                    judge.name, judge.family, judge.protocol, config, request.study
                )
                return judge_pb2.DefineJudgeResponse(judge=info(judge))
            self.records[judge.name] = await repo.define_judge(
                judge.name, judge.family, judge.protocol, config, request.study
            )
        except JudgeOwned as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        # Offered only once stored: a refused definition is never listed or used.
        self.registry.judges[judge.name] = judge
        return judge_pb2.DefineJudgeResponse(judge=info(judge))

    async def ImportJudgments(
        self, request: judge_pb2.ImportJudgmentsRequest, context: Context
    ) -> judge_pb2.ImportJudgmentsResponse:
        repo = await require_ready(self.repo, context, "judge database")
        if not request.judgments and not request.replace_generation_ids:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "judgments: nothing to import")
        problems = _import_problems(request)
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, listed(problems))
        ids = {j.generation_id for j in request.judgments} | set(request.replace_generation_ids)
        try:
            hashes = await repo.answer_hashes(sorted(ids))
        except PublishedViewMissing as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        missing = sorted(ids - set(hashes))
        if missing:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"unknown generation_id {missing[:10]}; nothing stored"
            )
        labels = [
            ImportedLabel(
                judgment=StoredJudgment(
                    generation_id=j.generation_id,
                    protocol=j.protocol,
                    status=UNSCORABLE if j.unscorable else OK,
                    harmful=j.harmful if j.HasField("harmful") else None,
                    value=j.value if j.HasField("value") else None,
                    rank=j.rank if j.HasField("rank") else None,
                    raw_output=j.raw_output,
                    reason=j.reason,
                    answer_sha256=hashes[j.generation_id],
                ),
                annotator=j.annotator,
                annotator_kind=_ANNOTATOR_KINDS[j.annotator_kind],
                coder=j.coder or None,
            )
            for j in request.judgments
        ]
        try:
            n_new, n_replaced = await repo.import_labels(
                labels,
                replace_generation_ids=list(request.replace_generation_ids),
                replace_protocol=request.replace_protocol,
                overwrite=request.overwrite,
            )
        except JudgeNameTaken as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except LabelsAlreadyStored as exc:
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"{len(exc.clashes)} label(s) already stored (e.g. by {exc.clashes[0][0]!r}); "
                "nothing imported; ask for replacement explicitly to overwrite them",
            )
        return judge_pb2.ImportJudgmentsResponse(n_imported=n_new, n_replaced=n_replaced)

    # -- judging -----------------------------------------------------------------------------

    async def _judge_for(self, name: str, context: Context) -> Judge:
        judge = self.judges.get(name)
        if judge is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown judge {name!r}; available: {', '.join(sorted(self.judges))}",
            )
        assert judge is not None
        return judge

    def _check_item(
        self,
        judge: Judge,
        prompt: common_pb2.Prompt,
        answers: Sequence[judge_pb2.Answer],
        references: Sequence[str],
        where: str,
    ) -> None:
        def invalid(message: str) -> ItemRejected:
            return ItemRejected(grpc.StatusCode.INVALID_ARGUMENT, where + message)

        if not prompt.text.strip():
            raise invalid("prompt.text: empty")
        if not answers:
            raise invalid("answers: no answers")
        if len(answers) > judge.max_answers:
            raise invalid(
                f"answers: {len(answers)} answers exceed the limit of {judge.max_answers} for "
                f"judge {judge.name!r}"
            )
        if len(references) > MAX_REFERENCES:
            raise invalid(
                f"references: {len(references)} references exceed the limit of {MAX_REFERENCES}"
            )
        limit = self.settings.judge_max_answer_chars
        texts = [
            ("prompt.text", prompt.text),
            *((f"references[{i}]", r) for i, r in enumerate(references)),
            *((f"answers[{i}].text", a.text) for i, a in enumerate(answers)),
        ]
        for field, text in texts:
            if len(text) > limit:
                raise invalid(f"{field}: {len(text)} characters exceed the limit of {limit}")
        ids = [a.generation_id for a in answers if a.generation_id]
        if len(set(ids)) != len(ids):
            raise invalid("answers: duplicate generation_id")

    async def _stored_verdicts(
        self,
        judge: Judge,
        items: Sequence[Sequence[judge_pb2.Answer]],
        where: str,
        rejudge_unscorable: bool,
    ) -> dict[int, StoredJudgment]:
        """Verdicts this judge (as configured now) already gave on the stored answers of
        `items`, read in two queries for the whole request; an unknown generation_id rejects
        the request before anything is judged, and so does text that differs from the stored
        answer's (its verdict would be stored, and reused, as the stored answer's). A verdict
        is reused only for the text it judged: one given before an imported answer's text
        changed is not."""
        repo = self.repo
        assert repo is not None
        ids = [a.generation_id for answers in items for a in answers if a.generation_id]
        if not ids:  # ad-hoc answers need no database round trip
            return {}
        try:
            stored = await repo.answer_hashes(ids)
        except PublishedViewMissing as exc:
            raise ItemRejected(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc
        for i, answers in enumerate(items):
            missing = {a.generation_id for a in answers if a.generation_id} - set(stored)
            if missing:
                raise ItemRejected(
                    grpc.StatusCode.NOT_FOUND,
                    f"{where.format(i)}answers: unknown generation_id {sorted(missing)}",
                )
            for k, a in enumerate(answers):
                if a.generation_id and text_sha256(a.text) != stored[a.generation_id]:
                    raise ItemRejected(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"{where.format(i)}answers[{k}].text: differs from the stored text of "
                        f"generation {a.generation_id}; send the stored text, or generation_id "
                        "0 to judge this text without storing the verdict",
                    )
        found = {
            i: j
            for i, j in (await repo.find_judgments(self.records[judge.name], ids)).items()
            if j.answer_sha256 == stored[i]
        }
        if rejudge_unscorable:
            return {i: j for i, j in found.items() if j.status != UNSCORABLE}
        return found

    async def _judge_item(
        self,
        judge: Judge,
        prompt: common_pb2.Prompt,
        answers: Sequence[judge_pb2.Answer],
        references: Sequence[str],
        stored: Mapping[int, StoredJudgment],
    ) -> list[common_pb2.Judgment]:
        """Verdicts on `answers`, from storage where this judge (as configured now) gave them.

        A pointwise judge judges each answer on its own and each verdict is stored as soon as
        it is given, so a failure on one answer keeps the others (they are paid for). Other
        judges judge the set together, and their stored verdicts count only for that set.
        """
        if judge.kind != POINTWISE:
            return await self._judge_set(judge, prompt, answers, references, stored)
        results = await asyncio.gather(
            *(self._judge_set(judge, prompt, [a], references, stored) for a in answers),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [j for result in results if not isinstance(result, BaseException) for j in result]

    async def _judge_set(
        self,
        judge: Judge,
        prompt: common_pb2.Prompt,
        answers: Sequence[judge_pb2.Answer],
        references: Sequence[str],
        stored: Mapping[int, StoredJudgment],
    ) -> list[common_pb2.Judgment]:
        repo = self.repo
        assert repo is not None
        ids = [a.generation_id for a in answers]
        # A listwise rank (or a pairwise share, or a panel with such members) is relative to
        # the answers it was given with: it is reused only for the same set.
        answer_set = sorted(ids) if judge.kind != POINTWISE else None
        found = [stored.get(i) for i in ids]
        if all(
            j is not None and (answer_set is None or j.details.get("answer_set") == answer_set)
            for j in found
        ):
            hits = [j for j in found if j is not None]
            return [to_proto(judge, j.generation_id, j, cached=True) for j in hits]
        verdicts = await judge.judge(
            JudgeInput(
                prompt=prompt.text,
                answers=[a.text for a in answers],
                references=list(references),
            )
        )
        if answer_set is not None:
            verdicts = [
                dataclasses.replace(v, details={**v.details, "answer_set": answer_set})
                for v in verdicts
            ]
        to_store = [
            StoredJudgment(
                generation_id=a.generation_id,
                protocol=judge.protocol,
                status=v.status,
                harmful=v.harmful,
                value=v.value,
                rank=v.rank,
                raw_output=v.raw_output,
                reason=v.reason,
                prompt_tokens=v.prompt_tokens,
                completion_tokens=v.completion_tokens,
                cost_usd=v.cost_usd,
                order_sensitive=v.order_sensitive,
                details=v.details,
                answer_sha256=text_sha256(a.text),
            )
            for a, v in zip(answers, verdicts, strict=True)
            if a.generation_id
        ]
        if to_store:
            await repo.store_judgments(self.records[judge.name], to_store)
        for v in verdicts:
            # The reason's prefix ("duplicate_rank", not "duplicate_rank:2") keeps labels few.
            reason = v.reason.split(":", 1)[0] if v.status == UNSCORABLE else ""
            VERDICTS.labels(judge.name, v.status, reason).inc()
        return [to_proto(judge, i, v, cached=False) for i, v in zip(ids, verdicts, strict=True)]

    async def _abort_for(self, exc: Exception, context: Context) -> None:
        if isinstance(exc, ItemRejected):
            await context.abort(exc.code, str(exc))
        if isinstance(exc, BudgetExceeded):
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc}; finished verdicts are stored"
            )
        if isinstance(exc, JudgeInputError):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if isinstance(exc, JudgeRequestRejected):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"{exc}; finished verdicts are stored"
            )
        if isinstance(exc, JudgeBackendError):
            logger.warning("judge backend unavailable: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; finished verdicts are stored")
        raise exc

    async def Judge(
        self, request: judge_pb2.JudgeRequest, context: Context
    ) -> judge_pb2.JudgeResponse:
        await require_ready(self.repo, context, "judge database")
        judge = await self._judge_for(request.judge, context)
        try:
            self._check_item(judge, request.prompt, request.answers, request.references, "")
            stored = await self._stored_verdicts(
                judge, [request.answers], "", request.rejudge_unscorable
            )
            judgments = await self._judge_item(
                judge, request.prompt, request.answers, request.references, stored
            )
        except (ItemRejected, BudgetExceeded, JudgeInputError, JudgeBackendError) as exc:
            await self._abort_for(exc, context)
        return judge_pb2.JudgeResponse(judgments=judgments)

    async def JudgeBatch(
        self, request: judge_pb2.JudgeBatchRequest, context: Context
    ) -> AsyncIterator[judge_pb2.JudgeBatchResponse]:
        await require_ready(self.repo, context, "judge database")
        judge = await self._judge_for(request.judge, context)
        if not request.items:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "items: nothing to judge")
        if len(request.items) > MAX_BATCH_ITEMS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"items: {len(request.items)} items exceed the limit of {MAX_BATCH_ITEMS}",
            )
        try:
            for i, item in enumerate(request.items):
                self._check_item(judge, item.prompt, item.answers, item.references, f"items[{i}].")
            stored = await self._stored_verdicts(
                judge,
                [item.answers for item in request.items],
                "items[{}].",
                request.rejudge_unscorable,
            )
        except ItemRejected as exc:
            await context.abort(exc.code, str(exc))

        async def one(i: int) -> judge_pb2.JudgeBatchResponse:
            item = request.items[i]
            judgments = await self._judge_item(
                judge, item.prompt, item.answers, item.references, stored
            )
            return judge_pb2.JudgeBatchResponse(item_index=i, judgments=judgments)

        # Concurrency is bounded where it matters: by each endpoint's adaptive limiter.
        tasks = [asyncio.ensure_future(one(i)) for i in range(len(request.items))]
        try:
            for done in asyncio.as_completed(tasks):
                try:
                    reply = await done
                except (ItemRejected, BudgetExceeded, JudgeInputError, JudgeBackendError) as exc:
                    await self._abort_for(exc, context)
                yield reply
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
