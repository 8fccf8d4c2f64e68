"""Judges from definitions: the built-in panel from settings, a judges file, and definitions
sent at run time (e.g. written in a study file).

A definition is a mapping:

    - name: openai-strongreject-gpt-4o      # must be unique
      family: llm                            # llm | llama-guard | panel | reference-metric
      protocol: strongreject    # listwise|pairwise|binary|likert|strongreject|fine-grained
      base_url: https://api.openai.com/v1
      model: gpt-4o
      api_key_env: OPENAI_API_KEY            # the key itself never travels in a definition
      structured_output: true                # JSON-schema output where the server supports it
      examples: few-shot.jsonl               # few-shot examples (prompt, answer, output)
      position_bias: reversed                # listwise: none | reversed | all
      transport: aiohttp                     # openai-sdk (default) | aiohttp
    - {name: judges-majority, family: panel, members: [refusal-matcher, openai-binary-gpt-4o],
       aggregate: majority}                 # majority | mean | any-unsafe
    - {name: rouge1-recall, family: reference-metric, metric: rouge1-recall, threshold: 0.5}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from harmeval.settings import JudgeSettings
from harmeval_judge.judges import (
    Judge,
    LlamaGuardJudge,
    LlmListwiseJudge,
    LlmPairwiseJudge,
    LlmPointwiseJudge,
    LlmSettings,
    PanelJudge,
    ProfanityClassifierJudge,
    ReferenceMetricJudge,
    RefusalMatcherJudge,
)
from harmeval_judge.limits import Budget, Prices, load_price_table
from harmeval_judge.llm_client import TRANSPORTS, LlmEndpoint

POINTWISE_PROTOCOLS = ("binary", "likert", "strongreject", "fine-grained")
FAMILIES = ("llm", "llama-guard", "panel", "reference-metric", "refusal-matcher", "classifier")


class DefinitionError(ValueError):
    """A judge definition is wrong; the message names the judge and the field."""


class JudgeRegistry:
    """Every judge the service offers, and the shared endpoints, prices and budget."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self.budget = Budget(settings.judge_budget_usd or None)
        self.prices = load_price_table(settings.judge_prices) if settings.judge_prices else {}
        self.endpoints: dict[tuple[str, str, str], LlmEndpoint] = {}
        self.judges: dict[str, Judge] = {}

    def endpoint(self, base_url: str, api_key: str, transport: str) -> LlmEndpoint:
        key = (base_url, api_key, transport)
        if key not in self.endpoints:
            s = self.settings
            self.endpoints[key] = LlmEndpoint(
                base_url,
                api_key,
                timeout_s=s.judge_llm_timeout_seconds,
                deadline_s=s.judge_llm_deadline_seconds,
                max_attempts=s.judge_llm_max_retries + 1,
                budget=self.budget,
                max_concurrency=s.judge_llm_max_concurrency,
                transport=transport,
            )
        return self.endpoints[key]

    def _llm(self, d: Mapping[str, Any], where: str) -> LlmSettings:
        s = self.settings
        base_url = str(d.get("base_url", s.judge_llm_base_url))
        key_env = d.get("api_key_env")
        if key_env is not None and key_env not in os.environ:
            raise DefinitionError(f"{where}.api_key_env: {key_env} is not set in the environment")
        api_key = os.environ[key_env] if key_env else s.judge_llm_api_key
        model = str(d.get("model", s.judge_llm_model))
        transport = str(d.get("transport", s.judge_llm_transport))
        if transport not in TRANSPORTS:
            raise DefinitionError(f"{where}.transport: expected one of {list(TRANSPORTS)}")
        return LlmSettings(
            endpoint=self.endpoint(base_url, api_key, transport),
            model=model,
            prices=self.prices.get(model, Prices()),
            max_tokens=int(d.get("max_tokens", s.judge_llm_max_tokens)),
        )

    def build(self, d: Mapping[str, Any]) -> Judge:
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError("judge definition: 'name' must be a non-empty string")
        where = f"judge {name!r}"
        family = d.get("family")
        if family not in FAMILIES:
            raise DefinitionError(f"{where}.family: expected one of {list(FAMILIES)}")
        try:
            if family == "refusal-matcher":
                return RefusalMatcherJudge(name)
            if family == "classifier":
                return ProfanityClassifierJudge(name)
            if family == "reference-metric":
                from harmeval_judge.reference import METRICS

                metric = str(d.get("metric", name))
                if metric not in METRICS:
                    raise DefinitionError(f"{where}.metric: expected one of {list(METRICS)}")
                judge = ReferenceMetricJudge(metric, float(d.get("threshold", 0.5)))
                judge.name = name
                return judge
            if family == "panel":
                members = d.get("members")
                if not isinstance(members, list) or len(members) < 2:
                    raise DefinitionError(f"{where}.members: a list of at least two judge names")
                unknown = [m for m in members if m not in self.judges]
                if unknown:
                    raise DefinitionError(f"{where}.members: unknown judges {unknown}")
                return PanelJudge(
                    name, [self.judges[m] for m in members], str(d.get("aggregate", "majority"))
                )
            llm = self._llm(d, where)
            if family == "llama-guard":
                return LlamaGuardJudge(name, llm)
            protocol = d.get("protocol", "listwise")
            if protocol == "listwise":
                return LlmListwiseJudge(name, llm, str(d.get("position_bias", "none")))
            if protocol == "pairwise":
                return LlmPairwiseJudge(name, llm)
            if protocol not in POINTWISE_PROTOCOLS:
                raise DefinitionError(
                    f"{where}.protocol: expected 'listwise', 'pairwise' or one of "
                    f"{list(POINTWISE_PROTOCOLS)}"
                )
            return LlmPointwiseJudge(
                name,
                llm,
                str(protocol),
                structured_output=bool(d.get("structured_output", False)),
                examples_file=str(d.get("examples", "")),
            )
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
            self.add({"name": s.judge_llm_name, "family": "llm", "protocol": "listwise"})
            short = s.judge_llm_model.rsplit("/", 1)[-1]
            for protocol in (*POINTWISE_PROTOCOLS, "pairwise"):
                self.add(
                    {"name": f"openai-{protocol}-{short}", "family": "llm", "protocol": protocol}
                )
        if s.judge_judges_file:
            self.load_file(str(s.judge_judges_file))

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


def parse_definition(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"judge definition is not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DefinitionError("judge definition must be a mapping with name and family")
    return data
