from harmeval.common.v1 import access_pb2 as _access_pb2
from harmeval.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnnotatorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOTATOR_KIND_UNSPECIFIED: _ClassVar[AnnotatorKind]
    ANNOTATOR_KIND_HUMAN: _ClassVar[AnnotatorKind]
    ANNOTATOR_KIND_MODEL: _ClassVar[AnnotatorKind]

class JudgeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JUDGE_KIND_UNSPECIFIED: _ClassVar[JudgeKind]
    JUDGE_KIND_POINTWISE: _ClassVar[JudgeKind]
    JUDGE_KIND_LISTWISE: _ClassVar[JudgeKind]
    JUDGE_KIND_PANEL: _ClassVar[JudgeKind]
ANNOTATOR_KIND_UNSPECIFIED: AnnotatorKind
ANNOTATOR_KIND_HUMAN: AnnotatorKind
ANNOTATOR_KIND_MODEL: AnnotatorKind
JUDGE_KIND_UNSPECIFIED: JudgeKind
JUDGE_KIND_POINTWISE: JudgeKind
JUDGE_KIND_LISTWISE: JudgeKind
JUDGE_KIND_PANEL: JudgeKind

class ImportedJudgment(_message.Message):
    __slots__ = ("generation_id", "annotator", "annotator_kind", "coder", "protocol", "unscorable", "harmful", "value", "rank", "raw_output", "reason")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_KIND_FIELD_NUMBER: _ClassVar[int]
    CODER_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    UNSCORABLE_FIELD_NUMBER: _ClassVar[int]
    HARMFUL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    RAW_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    generation_id: int
    annotator: str
    annotator_kind: AnnotatorKind
    coder: str
    protocol: str
    unscorable: bool
    harmful: bool
    value: float
    rank: int
    raw_output: str
    reason: str
    def __init__(self, generation_id: _Optional[int] = ..., annotator: _Optional[str] = ..., annotator_kind: _Optional[_Union[AnnotatorKind, str]] = ..., coder: _Optional[str] = ..., protocol: _Optional[str] = ..., unscorable: _Optional[bool] = ..., harmful: _Optional[bool] = ..., value: _Optional[float] = ..., rank: _Optional[int] = ..., raw_output: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ImportJudgmentsRequest(_message.Message):
    __slots__ = ("judgments", "replace_generation_ids", "replace_protocol", "overwrite")
    JUDGMENTS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_GENERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    judgments: _containers.RepeatedCompositeFieldContainer[ImportedJudgment]
    replace_generation_ids: _containers.RepeatedScalarFieldContainer[int]
    replace_protocol: str
    overwrite: bool
    def __init__(self, judgments: _Optional[_Iterable[_Union[ImportedJudgment, _Mapping]]] = ..., replace_generation_ids: _Optional[_Iterable[int]] = ..., replace_protocol: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class ImportJudgmentsResponse(_message.Message):
    __slots__ = ("n_imported", "n_replaced")
    N_IMPORTED_FIELD_NUMBER: _ClassVar[int]
    N_REPLACED_FIELD_NUMBER: _ClassVar[int]
    n_imported: int
    n_replaced: int
    def __init__(self, n_imported: _Optional[int] = ..., n_replaced: _Optional[int] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("generation_id", "text")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    generation_id: int
    text: str
    def __init__(self, generation_id: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class JudgeRequest(_message.Message):
    __slots__ = ("judge", "prompt", "answers", "references", "rejudge_unscorable")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    REJUDGE_UNSCORABLE_FIELD_NUMBER: _ClassVar[int]
    judge: str
    prompt: _common_pb2.Prompt
    answers: _containers.RepeatedCompositeFieldContainer[Answer]
    references: _containers.RepeatedScalarFieldContainer[str]
    rejudge_unscorable: bool
    def __init__(self, judge: _Optional[str] = ..., prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., answers: _Optional[_Iterable[_Union[Answer, _Mapping]]] = ..., references: _Optional[_Iterable[str]] = ..., rejudge_unscorable: _Optional[bool] = ...) -> None: ...

class JudgeItem(_message.Message):
    __slots__ = ("prompt", "answers", "references")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    prompt: _common_pb2.Prompt
    answers: _containers.RepeatedCompositeFieldContainer[Answer]
    references: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., answers: _Optional[_Iterable[_Union[Answer, _Mapping]]] = ..., references: _Optional[_Iterable[str]] = ...) -> None: ...

class JudgeBatchRequest(_message.Message):
    __slots__ = ("judge", "items", "rejudge_unscorable")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    REJUDGE_UNSCORABLE_FIELD_NUMBER: _ClassVar[int]
    judge: str
    items: _containers.RepeatedCompositeFieldContainer[JudgeItem]
    rejudge_unscorable: bool
    def __init__(self, judge: _Optional[str] = ..., items: _Optional[_Iterable[_Union[JudgeItem, _Mapping]]] = ..., rejudge_unscorable: _Optional[bool] = ...) -> None: ...

class JudgeBatchResponse(_message.Message):
    __slots__ = ("item_index", "judgments")
    ITEM_INDEX_FIELD_NUMBER: _ClassVar[int]
    JUDGMENTS_FIELD_NUMBER: _ClassVar[int]
    item_index: int
    judgments: _containers.RepeatedCompositeFieldContainer[_common_pb2.Judgment]
    def __init__(self, item_index: _Optional[int] = ..., judgments: _Optional[_Iterable[_Union[_common_pb2.Judgment, _Mapping]]] = ...) -> None: ...

class DefineJudgeRequest(_message.Message):
    __slots__ = ("definition", "study", "validate_only")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    definition: str
    study: str
    validate_only: bool
    def __init__(self, definition: _Optional[str] = ..., study: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class DefineJudgeResponse(_message.Message):
    __slots__ = ("judge",)
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    judge: JudgeInfo
    def __init__(self, judge: _Optional[_Union[JudgeInfo, _Mapping]] = ...) -> None: ...

class JudgeResponse(_message.Message):
    __slots__ = ("judgments",)
    JUDGMENTS_FIELD_NUMBER: _ClassVar[int]
    judgments: _containers.RepeatedCompositeFieldContainer[_common_pb2.Judgment]
    def __init__(self, judgments: _Optional[_Iterable[_Union[_common_pb2.Judgment, _Mapping]]] = ...) -> None: ...

class ListJudgesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JudgeInfo(_message.Message):
    __slots__ = ("name", "family", "kind", "protocol", "max_answers", "settings")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    MAX_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    kind: JudgeKind
    protocol: str
    max_answers: int
    settings: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., kind: _Optional[_Union[JudgeKind, str]] = ..., protocol: _Optional[str] = ..., max_answers: _Optional[int] = ..., settings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListJudgesResponse(_message.Message):
    __slots__ = ("judges",)
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    judges: _containers.RepeatedCompositeFieldContainer[JudgeInfo]
    def __init__(self, judges: _Optional[_Iterable[_Union[JudgeInfo, _Mapping]]] = ...) -> None: ...
