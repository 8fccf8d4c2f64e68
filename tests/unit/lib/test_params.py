from harmeval.common.v1 import common_pb2
from harmeval.params import GenerationParams


def test_unset_proto_fields_mean_defaults_and_hash_is_stable() -> None:
    p = GenerationParams.from_proto(common_pb2.GenerationParams())
    assert (p.top_p, p.max_tokens) == (1.0, 128)
    assert p.cache_key() == GenerationParams().cache_key()
    assert GenerationParams.from_proto(p.to_proto()) == p
    assert GenerationParams.from_json(p.as_json()) == p


def test_every_field_changes_the_key() -> None:
    base = GenerationParams()
    variants = [
        GenerationParams(temperature=0.1),
        GenerationParams(top_p=0.9),
        GenerationParams(max_tokens=64),
        GenerationParams(stop=("\n",)),
        GenerationParams(seed=1),
    ]
    keys = {v.cache_key() for v in variants}
    assert len(keys) == len(variants) and base.cache_key() not in keys


def test_validate_names_fields() -> None:
    problems = GenerationParams(
        temperature=-1, top_p=2, max_tokens=0, stop=("",), seed=-1
    ).validate()
    assert len(problems) == 5
    assert GenerationParams().validate() == []
