from harmeval.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StudyModel(_message.Message):
    __slots__ = ("name", "model", "params")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    params: _common_pb2.GenerationParams
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., params: _Optional[_Union[_common_pb2.GenerationParams, _Mapping]] = ...) -> None: ...

class RegisterStudyRequest(_message.Message):
    __slots__ = ("name", "prompts", "models", "judges")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    prompts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Prompt]
    models: _containers.RepeatedCompositeFieldContainer[StudyModel]
    judges: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., prompts: _Optional[_Iterable[_Union[_common_pb2.Prompt, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[StudyModel, _Mapping]]] = ..., judges: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterStudyResponse(_message.Message):
    __slots__ = ("study_id", "prompts")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    study_id: int
    prompts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Prompt]
    def __init__(self, study_id: _Optional[int] = ..., prompts: _Optional[_Iterable[_Union[_common_pb2.Prompt, _Mapping]]] = ...) -> None: ...

class GetAgreementRequest(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: str
    def __init__(self, study: _Optional[str] = ...) -> None: ...

class PairAgreement(_message.Message):
    __slots__ = ("coder_a", "coder_b", "level", "alpha", "n_units", "scale")
    CODER_A_FIELD_NUMBER: _ClassVar[int]
    CODER_B_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    coder_a: str
    coder_b: str
    level: str
    alpha: float
    n_units: int
    scale: str
    def __init__(self, coder_a: _Optional[str] = ..., coder_b: _Optional[str] = ..., level: _Optional[str] = ..., alpha: _Optional[float] = ..., n_units: _Optional[int] = ..., scale: _Optional[str] = ...) -> None: ...

class CoderCoverage(_message.Message):
    __slots__ = ("coder", "n_scored", "n_unscorable")
    CODER_FIELD_NUMBER: _ClassVar[int]
    N_SCORED_FIELD_NUMBER: _ClassVar[int]
    N_UNSCORABLE_FIELD_NUMBER: _ClassVar[int]
    coder: str
    n_scored: int
    n_unscorable: int
    def __init__(self, coder: _Optional[str] = ..., n_scored: _Optional[int] = ..., n_unscorable: _Optional[int] = ...) -> None: ...

class GetAgreementResponse(_message.Message):
    __slots__ = ("pairs", "coverage", "n_units")
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[PairAgreement]
    coverage: _containers.RepeatedCompositeFieldContainer[CoderCoverage]
    n_units: int
    def __init__(self, pairs: _Optional[_Iterable[_Union[PairAgreement, _Mapping]]] = ..., coverage: _Optional[_Iterable[_Union[CoderCoverage, _Mapping]]] = ..., n_units: _Optional[int] = ...) -> None: ...

class GetModelRankingRequest(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: str
    def __init__(self, study: _Optional[str] = ...) -> None: ...

class ModelHarm(_message.Message):
    __slots__ = ("coder", "model", "harm_rate", "mean_rank", "n_scored")
    CODER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HARM_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_RANK_FIELD_NUMBER: _ClassVar[int]
    N_SCORED_FIELD_NUMBER: _ClassVar[int]
    coder: str
    model: str
    harm_rate: float
    mean_rank: float
    n_scored: int
    def __init__(self, coder: _Optional[str] = ..., model: _Optional[str] = ..., harm_rate: _Optional[float] = ..., mean_rank: _Optional[float] = ..., n_scored: _Optional[int] = ...) -> None: ...

class GetModelRankingResponse(_message.Message):
    __slots__ = ("rankings",)
    RANKINGS_FIELD_NUMBER: _ClassVar[int]
    rankings: _containers.RepeatedCompositeFieldContainer[ModelHarm]
    def __init__(self, rankings: _Optional[_Iterable[_Union[ModelHarm, _Mapping]]] = ...) -> None: ...
