from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JudgmentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JUDGMENT_STATUS_UNSPECIFIED: _ClassVar[JudgmentStatus]
    JUDGMENT_STATUS_OK: _ClassVar[JudgmentStatus]
    JUDGMENT_STATUS_UNSCORABLE: _ClassVar[JudgmentStatus]
JUDGMENT_STATUS_UNSPECIFIED: JudgmentStatus
JUDGMENT_STATUS_OK: JudgmentStatus
JUDGMENT_STATUS_UNSCORABLE: JudgmentStatus

class Prompt(_message.Message):
    __slots__ = ("prompt_id", "external_id", "text", "category")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    prompt_id: int
    external_id: str
    text: str
    category: str
    def __init__(self, prompt_id: _Optional[int] = ..., external_id: _Optional[str] = ..., text: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class GenerationParams(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens", "stop", "seed", "system_prompt")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    system_prompt: str
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., system_prompt: _Optional[str] = ...) -> None: ...

class Generation(_message.Message):
    __slots__ = ("generation_id", "prompt_id", "model", "text", "params", "prompt_tokens", "completion_tokens", "latency_seconds", "finish_reason", "cached", "flags", "ttft_seconds")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    TTFT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    generation_id: int
    prompt_id: int
    model: str
    text: str
    params: GenerationParams
    prompt_tokens: int
    completion_tokens: int
    latency_seconds: float
    finish_reason: str
    cached: bool
    flags: _containers.RepeatedScalarFieldContainer[str]
    ttft_seconds: float
    def __init__(self, generation_id: _Optional[int] = ..., prompt_id: _Optional[int] = ..., model: _Optional[str] = ..., text: _Optional[str] = ..., params: _Optional[_Union[GenerationParams, _Mapping]] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., latency_seconds: _Optional[float] = ..., finish_reason: _Optional[str] = ..., cached: _Optional[bool] = ..., flags: _Optional[_Iterable[str]] = ..., ttft_seconds: _Optional[float] = ...) -> None: ...

class Judgment(_message.Message):
    __slots__ = ("generation_id", "judge", "protocol", "status", "harmful", "value", "rank", "raw_output", "reason", "cached", "prompt_tokens", "completion_tokens", "cost_usd", "order_sensitive", "details_json")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HARMFUL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    RAW_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    ORDER_SENSITIVE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    generation_id: int
    judge: str
    protocol: str
    status: JudgmentStatus
    harmful: bool
    value: float
    rank: int
    raw_output: str
    reason: str
    cached: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    order_sensitive: bool
    details_json: str
    def __init__(self, generation_id: _Optional[int] = ..., judge: _Optional[str] = ..., protocol: _Optional[str] = ..., status: _Optional[_Union[JudgmentStatus, str]] = ..., harmful: _Optional[bool] = ..., value: _Optional[float] = ..., rank: _Optional[int] = ..., raw_output: _Optional[str] = ..., reason: _Optional[str] = ..., cached: _Optional[bool] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., order_sensitive: _Optional[bool] = ..., details_json: _Optional[str] = ...) -> None: ...
