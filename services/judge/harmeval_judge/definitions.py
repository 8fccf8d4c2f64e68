"""Judges from definitions: the built-in panel from settings, a judges file, and definitions
sent at run time (e.g. written in a study file).

A definition is a mapping with a name, a family and the fields that family allows (the
families register themselves, with their fields, in :mod:`harmeval_judge.families`; a field
the family does not declare is an error):

    - name: openai-strongreject-gpt-4o      # must be unique
      family: llm      # llm | llama-guard | panel | reference-metric | refusal-matcher | classifier
      protocol: strongreject    # listwise|pairwise|binary|likert|strongreject|fine-grained
      backend: openai          # a backend the operator declared (default: "default")
      model: gpt-4o
      structured_output: auto                # none (default) | json_schema | json_object | auto
      examples: few-shot.jsonl               # few-shot examples (prompt, answer, output)
      position_bias: reversed                # listwise: none | reversed | all
      transport: aiohttp                     # openai-sdk (default) | aiohttp
    - {name: judges-majority, family: panel, members: [refusal-matcher, openai-binary-gpt-4o],
       aggregate: majority}                 # majority | mean | any-unsafe
    - {name: rouge1-recall, family: reference-metric, metric: rouge1-recall, threshold: 0.5}

A definition never carries a URL or a key (`base_url`, `api_key_env`, `api_key` and
`api_key_file` are refused): it names a backend the operator declared
(:mod:`harmeval_judge.backends`), so no caller can make the service send a key, or a request,
anywhere the operator did not say.

The judges added at start-up (the settings' panel and the judges file) are *built in*:
:attr:`JudgeRegistry.builtin` names them, and the service never lets a definition sent
through the API replace one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from harmeval.validation import name_problems
from harmeval_judge.backends import Backend, load_backends
from harmeval_judge.families.llm import POINTWISE_PROTOCOLS
from harmeval_judge.family import BuildContext, DefinitionError, LlmFields, families
from harmeval_judge.judges import Judge, LlmSettings
from harmeval_judge.limits import Budget, Prices, load_price_table
from harmeval_judge.llm_client import TRANSPORTS, LlmEndpoint
from harmeval_judge.settings import JudgeSettings

__all__ = ["DefinitionError", "JudgeRegistry", "parse_definition"]

# Fields that would put an address or a key in a definition's hands.
_ENDPOINT_FIELDS = ("base_url", "api_key_env", "api_key", "api_key_file")


class JudgeRegistry:
    """Every judge the service offers, and the shared endpoints, prices and budget."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self.budget = Budget(settings.judge_budget_usd or None)
        self.prices = load_price_table(settings.judge_prices) if settings.judge_prices else {}
        self.backends: dict[str, Backend] = load_backends(settings)
        # One endpoint (one limiter, one connection pool) per backend and transport.
        self.endpoints: dict[tuple[str, str], LlmEndpoint] = {}
        self.judges: dict[str, Judge] = {}
        # The judges added at start-up (add_builtin): no definition sent later replaces one.
        self.builtin: frozenset[str] = frozenset()

    def endpoint(self, backend: Backend, transport: str) -> LlmEndpoint:
        key = (backend.name, transport)
        if key not in self.endpoints:
            s = self.settings
            self.endpoints[key] = LlmEndpoint(
                backend.base_url,
                backend.api_key,
                backend=backend.name,
                timeout_s=s.judge_llm_timeout_seconds,
                deadline_s=s.judge_llm_deadline_seconds,
                max_attempts=s.judge_llm_max_retries + 1,
                budget=self.budget,
                max_concurrency=s.judge_llm_max_concurrency,
                transport=transport,
            )
        return self.endpoints[key]

    def _llm(self, fields: LlmFields, where: str) -> LlmSettings:
        """The settings of an LLM-backed judge: a field not given is the service's setting."""
        s = self.settings
        backend = self.backends.get(fields.backend)
        if backend is None:
            raise DefinitionError(
                f"{where}.backend: unknown backend {fields.backend!r}; declared: "
                f"{sorted(self.backends)} (the operator declares backends in "
                "HARMEVAL_JUDGE_BACKENDS_FILE)"
            )
        model = s.judge_llm_model if fields.model is None else fields.model
        transport = fields.transport or backend.transport or s.judge_llm_transport
        if transport not in TRANSPORTS:
            raise DefinitionError(f"{where}.transport: expected one of {list(TRANSPORTS)}")
        return LlmSettings(
            endpoint=self.endpoint(backend, transport),
            model=model,
            prices=self.prices.get(model, Prices()),
            max_tokens=s.judge_llm_max_tokens if fields.max_tokens is None else fields.max_tokens,
        )

    def build(self, d: Mapping[str, Any]) -> Judge:
        """The judge a definition describes; DefinitionError names the judge and the field."""
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError("judge definition: 'name' must be a non-empty string")
        if problems := name_problems([("judge definition: name", name)]):
            raise DefinitionError(problems[0])
        where = f"judge {name!r}"
        for field in _ENDPOINT_FIELDS:
            if field in d:
                raise DefinitionError(
                    f"{where}.{field}: a definition carries no URL or key; the operator "
                    "declares the backend (URL and key) in HARMEVAL_JUDGE_BACKENDS_FILE and "
                    "the definition names it: backend: <name>"
                )
        known = families()
        family = d.get("family")
        if not isinstance(family, str) or family not in known:
            raise DefinitionError(f"{where}.family: expected one of {sorted(known)}")
        ctx = BuildContext(
            where=where, judges=self.judges, llm=lambda fields: self._llm(fields, where)
        )
        try:
            return known[family].create(name, d, ctx)
        except DefinitionError:
            raise
        except (ValueError, OSError) as exc:
            raise DefinitionError(f"{where}: {exc}") from exc

    def add(self, d: Mapping[str, Any]) -> Judge:
        judge = self.build(d)
        self.judges[judge.name] = judge
        return judge

    def add_builtin(self) -> None:
        """The starting panel: matcher, classifier, reference metrics and, when an LLM endpoint
        is configured, the listwise judge plus one judge per pointwise protocol."""
        from harmeval_judge.reference import METRICS

        s = self.settings
        self.add({"name": "refusal-matcher", "family": "refusal-matcher"})
        self.add({"name": "profanity-classifier", "family": "classifier"})
        for metric in METRICS:
            self.add({"name": metric, "family": "reference-metric", "metric": metric})
        if s.judge_llm_enabled:
            structured = s.judge_llm_structured_output
            self.add(
                {
                    "name": s.judge_llm_name,
                    "family": "llm",
                    "protocol": "listwise",
                    "structured_output": structured,
                }
            )
            short = s.judge_llm_model.rsplit("/", 1)[-1]
            for protocol in (*POINTWISE_PROTOCOLS, "pairwise"):
                self.add(
                    {
                        "name": f"openai-{protocol}-{short}",
                        "family": "llm",
                        "protocol": protocol,
                        "structured_output": structured,
                    }
                )
        if s.judge_judges_file:
            self.load_file(str(s.judge_judges_file))
        self.builtin = frozenset(self.judges)

    def load_file(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as exc:
            raise DefinitionError(f"{path}: {exc}") from exc
        entries = data.get("judges") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise DefinitionError(f"{path}: expected a list of judge definitions under 'judges:'")
        for entry in entries:
            if not isinstance(entry, dict):
                raise DefinitionError(f"{path}: every judge definition must be a mapping")
            self.add(entry)

    async def close(self) -> None:
        for endpoint in self.endpoints.values():
            await endpoint.close()


# A definition is a few hundred bytes; a study's longest is a few kB.
MAX_DEFINITION_CHARS = 64_000


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: 400 bytes of nested aliases expand to millions of
    nodes (a "billion laughs"), and a definition has no use for them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in a judge definition")
        return super().compose_node(parent, index)


def parse_definition(text: str) -> dict[str, Any]:
    """A definition sent over the API (YAML or JSON), refused whole when it is too long,
    nested too deep or uses aliases."""
    if len(text) > MAX_DEFINITION_CHARS:
        raise DefinitionError(
            f"judge definition: {len(text):,} characters; at most {MAX_DEFINITION_CHARS:,}"
        )
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"judge definition is not valid YAML/JSON: {exc}") from exc
    except RecursionError as exc:
        raise DefinitionError("judge definition: nested too deeply") from exc
    except (ValueError, TypeError, AttributeError) as exc:
        # YAML's own constructors: a 5,000-digit integer, `2001-02-30`, a bad `!!timestamp`.
        raise DefinitionError(f"judge definition: a value YAML cannot read: {exc}"[:300]) from exc
    if not isinstance(data, dict):
        raise DefinitionError("judge definition must be a mapping with name and family")
    if _has_nul(data):
        # Stored as JSON in PostgreSQL, which cannot hold NUL.
        raise DefinitionError("judge definition: a value contains a NUL character")
    return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
