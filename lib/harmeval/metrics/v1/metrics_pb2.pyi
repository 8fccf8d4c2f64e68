from harmeval.common.v1 import access_pb2 as _access_pb2
from harmeval.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LabellingDesign(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABELLING_DESIGN_UNSPECIFIED: _ClassVar[LabellingDesign]
    LABELLING_DESIGN_UNIFORM: _ClassVar[LabellingDesign]
    LABELLING_DESIGN_ACTIVE: _ClassVar[LabellingDesign]
LABELLING_DESIGN_UNSPECIFIED: LabellingDesign
LABELLING_DESIGN_UNIFORM: LabellingDesign
LABELLING_DESIGN_ACTIVE: LabellingDesign

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

class GetStudyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetStudyResponse(_message.Message):
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

class GetAgreementRequest(_message.Message):
    __slots__ = ("study", "bootstrap", "confidence", "breakdown", "seed")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    study: str
    bootstrap: int
    confidence: float
    breakdown: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    def __init__(self, study: _Optional[str] = ..., bootstrap: _Optional[int] = ..., confidence: _Optional[float] = ..., breakdown: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ...) -> None: ...

class PairAgreement(_message.Message):
    __slots__ = ("coder_a", "coder_b", "level", "alpha", "n_units", "scale", "ci_low", "ci_high", "subset", "cohen_kappa", "kendall_tau_b", "n_tau_prompts")
    CODER_A_FIELD_NUMBER: _ClassVar[int]
    CODER_B_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    SUBSET_FIELD_NUMBER: _ClassVar[int]
    COHEN_KAPPA_FIELD_NUMBER: _ClassVar[int]
    KENDALL_TAU_B_FIELD_NUMBER: _ClassVar[int]
    N_TAU_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    coder_a: str
    coder_b: str
    level: str
    alpha: float
    n_units: int
    scale: str
    ci_low: float
    ci_high: float
    subset: str
    cohen_kappa: float
    kendall_tau_b: float
    n_tau_prompts: int
    def __init__(self, coder_a: _Optional[str] = ..., coder_b: _Optional[str] = ..., level: _Optional[str] = ..., alpha: _Optional[float] = ..., n_units: _Optional[int] = ..., scale: _Optional[str] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., subset: _Optional[str] = ..., cohen_kappa: _Optional[float] = ..., kendall_tau_b: _Optional[float] = ..., n_tau_prompts: _Optional[int] = ...) -> None: ...

class CoderCoverage(_message.Message):
    __slots__ = ("coder", "n_scored", "n_unscorable", "kind", "n_annotators", "n_order_sensitive")
    CODER_FIELD_NUMBER: _ClassVar[int]
    N_SCORED_FIELD_NUMBER: _ClassVar[int]
    N_UNSCORABLE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    N_ANNOTATORS_FIELD_NUMBER: _ClassVar[int]
    N_ORDER_SENSITIVE_FIELD_NUMBER: _ClassVar[int]
    coder: str
    n_scored: int
    n_unscorable: int
    kind: str
    n_annotators: int
    n_order_sensitive: int
    def __init__(self, coder: _Optional[str] = ..., n_scored: _Optional[int] = ..., n_unscorable: _Optional[int] = ..., kind: _Optional[str] = ..., n_annotators: _Optional[int] = ..., n_order_sensitive: _Optional[int] = ...) -> None: ...

class GetAgreementResponse(_message.Message):
    __slots__ = ("pairs", "coverage", "n_units", "fleiss_kappa", "fleiss_units", "consensus_coder", "person_agreement")
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    FLEISS_KAPPA_FIELD_NUMBER: _ClassVar[int]
    FLEISS_UNITS_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_CODER_FIELD_NUMBER: _ClassVar[int]
    PERSON_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[PairAgreement]
    coverage: _containers.RepeatedCompositeFieldContainer[CoderCoverage]
    n_units: int
    fleiss_kappa: float
    fleiss_units: int
    consensus_coder: str
    person_agreement: _containers.RepeatedCompositeFieldContainer[PersonAgreement]
    def __init__(self, pairs: _Optional[_Iterable[_Union[PairAgreement, _Mapping]]] = ..., coverage: _Optional[_Iterable[_Union[CoderCoverage, _Mapping]]] = ..., n_units: _Optional[int] = ..., fleiss_kappa: _Optional[float] = ..., fleiss_units: _Optional[int] = ..., consensus_coder: _Optional[str] = ..., person_agreement: _Optional[_Iterable[_Union[PersonAgreement, _Mapping]]] = ...) -> None: ...

class PersonAgreement(_message.Message):
    __slots__ = ("coder", "n_others", "n_units", "mean_alpha", "min_alpha", "max_alpha")
    CODER_FIELD_NUMBER: _ClassVar[int]
    N_OTHERS_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    MEAN_ALPHA_FIELD_NUMBER: _ClassVar[int]
    MIN_ALPHA_FIELD_NUMBER: _ClassVar[int]
    MAX_ALPHA_FIELD_NUMBER: _ClassVar[int]
    coder: str
    n_others: int
    n_units: int
    mean_alpha: float
    min_alpha: float
    max_alpha: float
    def __init__(self, coder: _Optional[str] = ..., n_others: _Optional[int] = ..., n_units: _Optional[int] = ..., mean_alpha: _Optional[float] = ..., min_alpha: _Optional[float] = ..., max_alpha: _Optional[float] = ...) -> None: ...

class GetModelRankingRequest(_message.Message):
    __slots__ = ("study", "bootstrap", "confidence", "seed", "target_half_width")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TARGET_HALF_WIDTH_FIELD_NUMBER: _ClassVar[int]
    study: str
    bootstrap: int
    confidence: float
    seed: int
    target_half_width: float
    def __init__(self, study: _Optional[str] = ..., bootstrap: _Optional[int] = ..., confidence: _Optional[float] = ..., seed: _Optional[int] = ..., target_half_width: _Optional[float] = ...) -> None: ...

class ModelHarm(_message.Message):
    __slots__ = ("coder", "model", "harm_rate", "mean_rank", "n_scored", "harm_rate_ci_low", "harm_rate_ci_high", "strength", "strength_ci_low", "strength_ci_high", "corrected_harm_rate", "corrected_ci_low", "corrected_ci_high", "sensitivity", "specificity", "n_calibration")
    CODER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HARM_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_RANK_FIELD_NUMBER: _ClassVar[int]
    N_SCORED_FIELD_NUMBER: _ClassVar[int]
    HARM_RATE_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    HARM_RATE_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_HARM_RATE_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    SPECIFICITY_FIELD_NUMBER: _ClassVar[int]
    N_CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    coder: str
    model: str
    harm_rate: float
    mean_rank: float
    n_scored: int
    harm_rate_ci_low: float
    harm_rate_ci_high: float
    strength: float
    strength_ci_low: float
    strength_ci_high: float
    corrected_harm_rate: float
    corrected_ci_low: float
    corrected_ci_high: float
    sensitivity: float
    specificity: float
    n_calibration: int
    def __init__(self, coder: _Optional[str] = ..., model: _Optional[str] = ..., harm_rate: _Optional[float] = ..., mean_rank: _Optional[float] = ..., n_scored: _Optional[int] = ..., harm_rate_ci_low: _Optional[float] = ..., harm_rate_ci_high: _Optional[float] = ..., strength: _Optional[float] = ..., strength_ci_low: _Optional[float] = ..., strength_ci_high: _Optional[float] = ..., corrected_harm_rate: _Optional[float] = ..., corrected_ci_low: _Optional[float] = ..., corrected_ci_high: _Optional[float] = ..., sensitivity: _Optional[float] = ..., specificity: _Optional[float] = ..., n_calibration: _Optional[int] = ...) -> None: ...

class WinMatrix(_message.Message):
    __slots__ = ("coder", "models", "wins", "ties")
    CODER_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    WINS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    coder: str
    models: _containers.RepeatedScalarFieldContainer[str]
    wins: _containers.RepeatedScalarFieldContainer[int]
    ties: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, coder: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., wins: _Optional[_Iterable[int]] = ..., ties: _Optional[_Iterable[int]] = ...) -> None: ...

class RankStability(_message.Message):
    __slots__ = ("coder_a", "coder_b", "kendall_tau")
    CODER_A_FIELD_NUMBER: _ClassVar[int]
    CODER_B_FIELD_NUMBER: _ClassVar[int]
    KENDALL_TAU_FIELD_NUMBER: _ClassVar[int]
    coder_a: str
    coder_b: str
    kendall_tau: float
    def __init__(self, coder_a: _Optional[str] = ..., coder_b: _Optional[str] = ..., kendall_tau: _Optional[float] = ...) -> None: ...

class PathologyRate(_message.Message):
    __slots__ = ("model", "flag", "n_flagged", "n_answers")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    N_FLAGGED_FIELD_NUMBER: _ClassVar[int]
    N_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    flag: str
    n_flagged: int
    n_answers: int
    def __init__(self, model: _Optional[str] = ..., flag: _Optional[str] = ..., n_flagged: _Optional[int] = ..., n_answers: _Optional[int] = ...) -> None: ...

class GetModelRankingResponse(_message.Message):
    __slots__ = ("rankings", "win_matrices", "stability", "pathologies", "few_label_estimates")
    RANKINGS_FIELD_NUMBER: _ClassVar[int]
    WIN_MATRICES_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    PATHOLOGIES_FIELD_NUMBER: _ClassVar[int]
    FEW_LABEL_ESTIMATES_FIELD_NUMBER: _ClassVar[int]
    rankings: _containers.RepeatedCompositeFieldContainer[ModelHarm]
    win_matrices: _containers.RepeatedCompositeFieldContainer[WinMatrix]
    stability: _containers.RepeatedCompositeFieldContainer[RankStability]
    pathologies: _containers.RepeatedCompositeFieldContainer[PathologyRate]
    few_label_estimates: _containers.RepeatedCompositeFieldContainer[FewLabelEstimate]
    def __init__(self, rankings: _Optional[_Iterable[_Union[ModelHarm, _Mapping]]] = ..., win_matrices: _Optional[_Iterable[_Union[WinMatrix, _Mapping]]] = ..., stability: _Optional[_Iterable[_Union[RankStability, _Mapping]]] = ..., pathologies: _Optional[_Iterable[_Union[PathologyRate, _Mapping]]] = ..., few_label_estimates: _Optional[_Iterable[_Union[FewLabelEstimate, _Mapping]]] = ...) -> None: ...

class FewLabelEstimate(_message.Message):
    __slots__ = ("judge", "model", "n_units", "n_human", "judge_only", "human_only", "human_ci_low", "human_ci_high", "combined", "combined_ci_low", "combined_ci_high", "method", "labels_needed_human", "labels_needed_combined", "target_half_width")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    N_HUMAN_FIELD_NUMBER: _ClassVar[int]
    JUDGE_ONLY_FIELD_NUMBER: _ClassVar[int]
    HUMAN_ONLY_FIELD_NUMBER: _ClassVar[int]
    HUMAN_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    HUMAN_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    COMBINED_FIELD_NUMBER: _ClassVar[int]
    COMBINED_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    COMBINED_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    LABELS_NEEDED_HUMAN_FIELD_NUMBER: _ClassVar[int]
    LABELS_NEEDED_COMBINED_FIELD_NUMBER: _ClassVar[int]
    TARGET_HALF_WIDTH_FIELD_NUMBER: _ClassVar[int]
    judge: str
    model: str
    n_units: int
    n_human: int
    judge_only: float
    human_only: float
    human_ci_low: float
    human_ci_high: float
    combined: float
    combined_ci_low: float
    combined_ci_high: float
    method: str
    labels_needed_human: int
    labels_needed_combined: int
    target_half_width: float
    def __init__(self, judge: _Optional[str] = ..., model: _Optional[str] = ..., n_units: _Optional[int] = ..., n_human: _Optional[int] = ..., judge_only: _Optional[float] = ..., human_only: _Optional[float] = ..., human_ci_low: _Optional[float] = ..., human_ci_high: _Optional[float] = ..., combined: _Optional[float] = ..., combined_ci_low: _Optional[float] = ..., combined_ci_high: _Optional[float] = ..., method: _Optional[str] = ..., labels_needed_human: _Optional[int] = ..., labels_needed_combined: _Optional[int] = ..., target_half_width: _Optional[float] = ...) -> None: ...

class ReliabilityValue(_message.Message):
    __slots__ = ("unit", "coder", "number", "category")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    CODER_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    unit: str
    coder: str
    number: float
    category: str
    def __init__(self, unit: _Optional[str] = ..., coder: _Optional[str] = ..., number: _Optional[float] = ..., category: _Optional[str] = ...) -> None: ...

class ComputeAgreementRequest(_message.Message):
    __slots__ = ("values", "level", "bootstrap", "confidence", "seed")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[ReliabilityValue]
    level: str
    bootstrap: int
    confidence: float
    seed: int
    def __init__(self, values: _Optional[_Iterable[_Union[ReliabilityValue, _Mapping]]] = ..., level: _Optional[str] = ..., bootstrap: _Optional[int] = ..., confidence: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class ComputeAgreementResponse(_message.Message):
    __slots__ = ("alpha", "ci_low", "ci_high", "n_units", "n_coders", "n_values")
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    N_CODERS_FIELD_NUMBER: _ClassVar[int]
    N_VALUES_FIELD_NUMBER: _ClassVar[int]
    alpha: float
    ci_low: float
    ci_high: float
    n_units: int
    n_coders: int
    n_values: int
    def __init__(self, alpha: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., n_units: _Optional[int] = ..., n_coders: _Optional[int] = ..., n_values: _Optional[int] = ...) -> None: ...

class ImportedAnswer(_message.Message):
    __slots__ = ("prompt_index", "model", "text")
    PROMPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    prompt_index: int
    model: str
    text: str
    def __init__(self, prompt_index: _Optional[int] = ..., model: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ImportedLabel(_message.Message):
    __slots__ = ("prompt_index", "model", "coder", "annotator", "annotator_kind", "value", "rank", "unscorable", "reason", "raw_output")
    PROMPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CODER_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    UNSCORABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RAW_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    prompt_index: int
    model: str
    coder: str
    annotator: str
    annotator_kind: str
    value: float
    rank: int
    unscorable: bool
    reason: str
    raw_output: str
    def __init__(self, prompt_index: _Optional[int] = ..., model: _Optional[str] = ..., coder: _Optional[str] = ..., annotator: _Optional[str] = ..., annotator_kind: _Optional[str] = ..., value: _Optional[float] = ..., rank: _Optional[int] = ..., unscorable: _Optional[bool] = ..., reason: _Optional[str] = ..., raw_output: _Optional[str] = ...) -> None: ...

class ImportStudyRequest(_message.Message):
    __slots__ = ("name", "prompts", "models", "answers", "labels", "references")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    prompts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Prompt]
    models: _containers.RepeatedScalarFieldContainer[str]
    answers: _containers.RepeatedCompositeFieldContainer[ImportedAnswer]
    labels: _containers.RepeatedCompositeFieldContainer[ImportedLabel]
    references: _containers.RepeatedCompositeFieldContainer[ImportedAnswer]
    def __init__(self, name: _Optional[str] = ..., prompts: _Optional[_Iterable[_Union[_common_pb2.Prompt, _Mapping]]] = ..., models: _Optional[_Iterable[str]] = ..., answers: _Optional[_Iterable[_Union[ImportedAnswer, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[ImportedLabel, _Mapping]]] = ..., references: _Optional[_Iterable[_Union[ImportedAnswer, _Mapping]]] = ...) -> None: ...

class ImportStudyResponse(_message.Message):
    __slots__ = ("study_id", "n_prompts", "n_answers", "n_labels")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    N_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    N_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    N_LABELS_FIELD_NUMBER: _ClassVar[int]
    study_id: int
    n_prompts: int
    n_answers: int
    n_labels: int
    def __init__(self, study_id: _Optional[int] = ..., n_prompts: _Optional[int] = ..., n_answers: _Optional[int] = ..., n_labels: _Optional[int] = ...) -> None: ...

class AnnotationRow(_message.Message):
    __slots__ = ("prompt", "model", "annotator", "value", "rank", "source")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    model: str
    annotator: str
    value: float
    rank: int
    source: str
    def __init__(self, prompt: _Optional[str] = ..., model: _Optional[str] = ..., annotator: _Optional[str] = ..., value: _Optional[float] = ..., rank: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class ImportAnnotationsRequest(_message.Message):
    __slots__ = ("study", "rows", "replace")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    study: str
    rows: _containers.RepeatedCompositeFieldContainer[AnnotationRow]
    replace: bool
    def __init__(self, study: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[AnnotationRow, _Mapping]]] = ..., replace: _Optional[bool] = ...) -> None: ...

class ImportAnnotationsResponse(_message.Message):
    __slots__ = ("n_imported", "n_replaced")
    N_IMPORTED_FIELD_NUMBER: _ClassVar[int]
    N_REPLACED_FIELD_NUMBER: _ClassVar[int]
    n_imported: int
    n_replaced: int
    def __init__(self, n_imported: _Optional[int] = ..., n_replaced: _Optional[int] = ...) -> None: ...

class GetStudyAnswersRequest(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: str
    def __init__(self, study: _Optional[str] = ...) -> None: ...

class StudyAnswer(_message.Message):
    __slots__ = ("generation_id", "model", "text")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    generation_id: int
    model: str
    text: str
    def __init__(self, generation_id: _Optional[int] = ..., model: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class StudyPrompt(_message.Message):
    __slots__ = ("prompt", "answers", "references")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    prompt: _common_pb2.Prompt
    answers: _containers.RepeatedCompositeFieldContainer[StudyAnswer]
    references: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., answers: _Optional[_Iterable[_Union[StudyAnswer, _Mapping]]] = ..., references: _Optional[_Iterable[str]] = ...) -> None: ...

class GetStudyAnswersResponse(_message.Message):
    __slots__ = ("prompts",)
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedCompositeFieldContainer[StudyPrompt]
    def __init__(self, prompts: _Optional[_Iterable[_Union[StudyPrompt, _Mapping]]] = ...) -> None: ...

class GetDisagreementsRequest(_message.Message):
    __slots__ = ("study", "limit")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    study: str
    limit: int
    def __init__(self, study: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class CoderLabel(_message.Message):
    __slots__ = ("coder", "harmful", "rank")
    CODER_FIELD_NUMBER: _ClassVar[int]
    HARMFUL_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    coder: str
    harmful: bool
    rank: int
    def __init__(self, coder: _Optional[str] = ..., harmful: _Optional[bool] = ..., rank: _Optional[int] = ...) -> None: ...

class Disagreement(_message.Message):
    __slots__ = ("prompt", "category", "model", "answer", "human_minus_judge", "labels")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    HUMAN_MINUS_JUDGE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    category: str
    model: str
    answer: str
    human_minus_judge: float
    labels: _containers.RepeatedCompositeFieldContainer[CoderLabel]
    def __init__(self, prompt: _Optional[str] = ..., category: _Optional[str] = ..., model: _Optional[str] = ..., answer: _Optional[str] = ..., human_minus_judge: _Optional[float] = ..., labels: _Optional[_Iterable[_Union[CoderLabel, _Mapping]]] = ...) -> None: ...

class GetDisagreementsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Disagreement]
    def __init__(self, items: _Optional[_Iterable[_Union[Disagreement, _Mapping]]] = ...) -> None: ...

class GetHarmMetricScoreRequest(_message.Message):
    __slots__ = ("study", "judge")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    study: str
    judge: str
    def __init__(self, study: _Optional[str] = ..., judge: _Optional[str] = ...) -> None: ...

class GetHarmMetricScoreResponse(_message.Message):
    __slots__ = ("score_v1", "score_v2", "fine_grained", "n_prompts", "n_skipped", "skipped")
    class FineGrainedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SCORE_V1_FIELD_NUMBER: _ClassVar[int]
    SCORE_V2_FIELD_NUMBER: _ClassVar[int]
    FINE_GRAINED_FIELD_NUMBER: _ClassVar[int]
    N_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    N_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    score_v1: float
    score_v2: float
    fine_grained: _containers.ScalarMap[str, float]
    n_prompts: int
    n_skipped: int
    skipped: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, score_v1: _Optional[float] = ..., score_v2: _Optional[float] = ..., fine_grained: _Optional[_Mapping[str, float]] = ..., n_prompts: _Optional[int] = ..., n_skipped: _Optional[int] = ..., skipped: _Optional[_Iterable[str]] = ...) -> None: ...

class PlanLabellingRequest(_message.Message):
    __slots__ = ("study", "budget", "design", "uniform_share", "seed")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    DESIGN_FIELD_NUMBER: _ClassVar[int]
    UNIFORM_SHARE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    study: str
    budget: int
    design: LabellingDesign
    uniform_share: float
    seed: int
    def __init__(self, study: _Optional[str] = ..., budget: _Optional[int] = ..., design: _Optional[_Union[LabellingDesign, str]] = ..., uniform_share: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class PlannedPrompt(_message.Message):
    __slots__ = ("prompt_id", "external_id", "position", "inclusion_probability", "selected", "judge_disagreement")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    JUDGE_DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    prompt_id: int
    external_id: str
    position: int
    inclusion_probability: float
    selected: bool
    judge_disagreement: float
    def __init__(self, prompt_id: _Optional[int] = ..., external_id: _Optional[str] = ..., position: _Optional[int] = ..., inclusion_probability: _Optional[float] = ..., selected: _Optional[bool] = ..., judge_disagreement: _Optional[float] = ...) -> None: ...

class PlanLabellingResponse(_message.Message):
    __slots__ = ("prompts", "judges")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedCompositeFieldContainer[PlannedPrompt]
    judges: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prompts: _Optional[_Iterable[_Union[PlannedPrompt, _Mapping]]] = ..., judges: _Optional[_Iterable[str]] = ...) -> None: ...

class GetLabellingProgressRequest(_message.Message):
    __slots__ = ("study", "half_width", "confidence", "judge")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    HALF_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    study: str
    half_width: float
    confidence: float
    judge: str
    def __init__(self, study: _Optional[str] = ..., half_width: _Optional[float] = ..., confidence: _Optional[float] = ..., judge: _Optional[str] = ...) -> None: ...

class ModelLabellingProgress(_message.Message):
    __slots__ = ("model", "n_units", "n_labelled", "judge_only", "judge_unscored", "estimate", "ci_low", "ci_high", "enough")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    N_UNITS_FIELD_NUMBER: _ClassVar[int]
    N_LABELLED_FIELD_NUMBER: _ClassVar[int]
    JUDGE_ONLY_FIELD_NUMBER: _ClassVar[int]
    JUDGE_UNSCORED_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    ENOUGH_FIELD_NUMBER: _ClassVar[int]
    model: str
    n_units: int
    n_labelled: int
    judge_only: float
    judge_unscored: int
    estimate: float
    ci_low: float
    ci_high: float
    enough: bool
    def __init__(self, model: _Optional[str] = ..., n_units: _Optional[int] = ..., n_labelled: _Optional[int] = ..., judge_only: _Optional[float] = ..., judge_unscored: _Optional[int] = ..., estimate: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., enough: _Optional[bool] = ...) -> None: ...

class GetLabellingProgressResponse(_message.Message):
    __slots__ = ("models", "enough", "half_width", "confidence", "judge", "n_waiting")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ENOUGH_FIELD_NUMBER: _ClassVar[int]
    HALF_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    N_WAITING_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelLabellingProgress]
    enough: bool
    half_width: float
    confidence: float
    judge: str
    n_waiting: int
    def __init__(self, models: _Optional[_Iterable[_Union[ModelLabellingProgress, _Mapping]]] = ..., enough: _Optional[bool] = ..., half_width: _Optional[float] = ..., confidence: _Optional[float] = ..., judge: _Optional[str] = ..., n_waiting: _Optional[int] = ...) -> None: ...
