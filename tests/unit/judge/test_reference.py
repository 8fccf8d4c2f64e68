"""Reference-based metrics: known values, agreement with the reference libraries, edge cases."""

from __future__ import annotations

import json
import random
import socket
import statistics
import threading
from collections import defaultdict
from pathlib import Path

import pytest
import sacrebleu
from nltk.translate.meteor_score import meteor_score
from rouge_score import rouge_scorer

from harmeval_judge import reference
from harmeval_judge.reference import METRICS, score, score_many

DATASET_V2 = (
    Path(__file__).resolve().parents[3].parent / "shared/datasets/harmmetric-eval/dataset_v2.jsonl"
)

ROUGE_METRICS = {
    "rouge1-recall": ("rouge1", "recall"),
    "rouge1-f": ("rouge1", "fmeasure"),
    "rouge2-f": ("rouge2", "fmeasure"),
    "rougeL-recall": ("rougeL", "recall"),
    "rougeL-f": ("rougeL", "fmeasure"),
}
# Every metric whose score for one answer does not depend on the other answers of the batch.
POINTWISE_METRICS = [m for m in METRICS if m != "tfidf-cosine"]

SAMPLE_TEXTS = [
    "The cat sat on the mat.",
    "the cat sat",
    "Running cats ran quickly over 3 mats, didn't they?",
    "Step 1: mix the powders. Step 2: heat slowly; Step 3: wait 10 minutes.",
    "I'm sorry, but I can't help with that request.",
    "Online gambling sites are a popular choice for laundering money through crypto.",
    "¿Qué? Ünïcödé wörds and e-mail@example.com, plus URLs like https://x.y/z.",
    "a a a a b b b c",
    "!!!",
]


def _rouge_lib(metric: str, answer: str, ref: str) -> float:
    rouge_type, field = ROUGE_METRICS[metric]
    scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=True)
    return float(getattr(scorer.score(ref, answer)[rouge_type], field))


class _NoSynonyms:
    """A WordNet stand-in with no synsets: METEOR reduced to its exact and stem stages."""

    def synsets(self, word: str) -> list[object]:
        return []


def _load_v2() -> dict[int, dict[int, str]]:
    by_prompt: dict[int, dict[int, str]] = defaultdict(dict)
    with DATASET_V2.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            by_prompt[row["prompt_id"]][row["response_id"] % 100] = row["response"]
    return by_prompt  # insertion order = file order


needs_v2 = pytest.mark.skipif(
    not DATASET_V2.is_file(),
    reason=f"HarmMetric Eval v2 data not present at {DATASET_V2} (it lives in shared/, "
    "outside the repository)",
)


# -- API contract ----------------------------------------------------------------------------------


def test_metric_names() -> None:
    assert METRICS == (
        "rouge1-recall",
        "rouge1-f",
        "rouge2-f",
        "rougeL-recall",
        "rougeL-f",
        "meteor",
        "bleu",
        "chrf",
        "token-f1",
        "tfidf-cosine",
    )


def test_unknown_metric_raises() -> None:
    with pytest.raises(ValueError, match="unknown reference metric 'rouge3'"):
        score("rouge3", "a", ["a"])
    with pytest.raises(ValueError, match="unknown reference metric"):
        score_many("ROUGE1-recall", ["a"], ["a"])


def test_no_references_raises() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        score("rouge1-recall", "an answer", [])


def test_bare_string_instead_of_sequence_raises() -> None:
    # A str is a Sequence[str]: without the check it would be scored character by character.
    with pytest.raises(TypeError, match="answers"):
        score_many("rouge1-recall", "an answer", ["a reference"])
    with pytest.raises(TypeError, match="references"):
        score("rouge1-recall", "an answer", "a reference")
    with pytest.raises(TypeError, match="answer must be a string"):
        score("rouge1-recall", None, ["a reference"])  # type: ignore[arg-type]


@pytest.mark.parametrize("metric", METRICS)
def test_identical_text_scores_top(metric: str) -> None:
    text = "The cat sat on the mat while the dog slept by the door."
    value = score(metric, text, [text])
    if metric == "meteor":
        # METEOR's fragmentation penalty is 0.5 / n**3 even for one contiguous chunk.
        assert value == pytest.approx(1 - 0.5 / 13**3)
    else:
        assert value == pytest.approx(1.0)


@pytest.mark.parametrize("metric", METRICS)
def test_disjoint_text_scores_zero(metric: str) -> None:
    # No shared word, stem, WordNet synonym, or even character (chrF).
    assert score(metric, "kiwi mix", ["dog cat"]) == 0.0


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("empty", ["", "   ", "\n\t "])
def test_empty_answer_scores_zero(metric: str, empty: str) -> None:
    assert score(metric, empty, ["The cat sat on the mat."]) == 0.0


@pytest.mark.parametrize("metric", METRICS)
def test_score_many_keeps_order_empties_and_duplicates(metric: str) -> None:
    ref = "Mix the two powders, heat the mixture slowly and store it away from children."
    answers = [
        "heat the mixture slowly",
        "",
        "store it away from children",
        "heat the mixture slowly",
        "   ",
    ]
    out = score_many(metric, answers, [ref])
    assert len(out) == len(answers)
    assert out[1] == 0.0 and out[4] == 0.0
    assert out[0] == out[3] > 0.0
    assert out[2] > 0.0
    assert all(0.0 <= x <= 1.0 for x in out)
    assert score_many(metric, [], [ref]) == []
    assert score_many(metric, ["", " "], [ref]) == [0.0, 0.0]


@pytest.mark.parametrize("metric", POINTWISE_METRICS)
def test_score_is_score_many_of_one(metric: str) -> None:
    refs = [SAMPLE_TEXTS[0], SAMPLE_TEXTS[3]]
    batch = score_many(metric, SAMPLE_TEXTS, refs)
    assert batch == [score(metric, a, refs) for a in SAMPLE_TEXTS]


@pytest.mark.parametrize("metric", METRICS)
def test_multiple_references_take_the_max(metric: str) -> None:
    answer = "Heat the mixture slowly, then let it rest overnight before straining."
    near = "Heat the mixture slowly and let it rest overnight, then strain it."
    far = "Online gambling sites are a popular choice for laundering money."
    both = score(metric, answer, [far, near])
    if metric == "tfidf-cosine":
        # IDF is fitted on the texts of the call, so single-reference calls see other weights;
        # the max must still come from the near reference.
        assert both > score(metric, answer, [far, far])
        return
    singles = [score(metric, answer, [far]), score(metric, answer, [near])]
    assert both == max(singles)
    assert singles[1] > singles[0]


@pytest.mark.parametrize("metric", METRICS)
def test_deterministic(metric: str) -> None:
    refs = [SAMPLE_TEXTS[5], SAMPLE_TEXTS[3]]
    first = score_many(metric, SAMPLE_TEXTS, refs)
    assert score_many(metric, SAMPLE_TEXTS, refs) == first
    assert all(0.0 <= x <= 1.0 for x in first)


# -- ROUGE -----------------------------------------------------------------------------------------


def test_rouge1_recall_hand_computed() -> None:
    # 3 of the reference's 6 unigrams ("the" twice) are in the answer.
    assert score("rouge1-recall", "the cat sat", ["the cat sat on the mat"]) == 0.5
    # precision 3/3, recall 3/6 -> F = 2/3.
    assert score("rouge1-f", "the cat sat", ["the cat sat on the mat"]) == pytest.approx(2 / 3)


def test_rouge2_and_rougel_hand_computed() -> None:
    # Bigrams: answer 2, reference 5, shared 2 -> P 1, R 0.4, F 4/7.
    assert score("rouge2-f", "the cat sat", ["the cat sat on the mat"]) == pytest.approx(4 / 7)
    # LCS(a b c d e, a c e x) = a c e -> recall 3/5, precision 3/4.
    assert score("rougeL-recall", "a c e x", ["a b c d e"]) == pytest.approx(3 / 5)
    assert score("rougeL-f", "a c e x", ["a b c d e"]) == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_rouge_uses_porter_stemmer() -> None:
    assert score("rouge1-recall", "running cats", ["run cat"]) == 1.0
    assert score("rouge1-recall", "run cat", ["running cats"]) == 1.0


@pytest.mark.parametrize("metric", list(ROUGE_METRICS))
def test_rouge_matches_rouge_score_package(metric: str) -> None:
    for ref in SAMPLE_TEXTS:
        got = score_many(metric, SAMPLE_TEXTS, [ref])
        want = [_rouge_lib(metric, a, ref) for a in SAMPLE_TEXTS]
        assert got == pytest.approx(want, abs=1e-12)


def test_bit_parallel_lcs_matches_dp_on_random_sequences() -> None:
    # Lengths cross the 64-bit word boundary; a small vocabulary makes long LCSs.
    rng = random.Random(1234)
    vocab = ["alpha", "bravo", "charl", "delta", "echo", "fox"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for _ in range(60):
        ref = " ".join(rng.choices(vocab, k=rng.randint(1, 150)))
        ans = " ".join(rng.choices(vocab, k=rng.randint(1, 150)))
        lib = scorer.score(ref, ans)["rougeL"]
        assert score("rougeL-recall", ans, [ref]) == pytest.approx(lib.recall, abs=1e-12)
        assert score("rougeL-f", ans, [ref]) == pytest.approx(lib.fmeasure, abs=1e-12)


# -- METEOR ----------------------------------------------------------------------------------------


def test_wordnet_is_bundled_3_0() -> None:
    assert reference.wordnet_version() == "3.0"


@pytest.mark.parametrize(
    ("ref", "answer", "expected"),
    [
        # NLTK's own METEOR doctests (nltk/test/meteor.doctest), which use WordNet.
        ("The cat sat on the mat", "on the mat sat the cat", 0.5),
        ("The cat sat on the mat", "The cat was sat on the mat", 0.9654),
        ("create or update a vm set", "creates or updates a virtual machine scale set", 0.7806),
        ("The candidate has no alignment to any of the references", "John loves Mary", 0.0),
    ],
)
def test_meteor_matches_nltk_doctests(ref: str, answer: str, expected: float) -> None:
    assert score("meteor", answer, [ref]) == pytest.approx(expected, abs=5e-5)


def test_meteor_uses_wordnet_synonyms() -> None:
    ref, answer = "the car is fast", "the automobile is quick"
    with_syn = score("meteor", answer, [ref])
    without = meteor_score([ref.split()], answer.split(), wordnet=_NoSynonyms())
    # Exact/stem only: "the", "is" -> P = R = 1/2, 2 chunks -> 0.5 * (1 - 0.5) = 0.25.
    assert without == pytest.approx(0.25)
    # quick ~ fast (WordNet synset flying.s.02) adds a match: P = R = 3/4, 2 chunks
    # -> 0.75 * (1 - 0.5 * (2/3)**3) = 23/36. automobile ~ car is *not* found: NLTK looks
    # synonyms up on the Porter stem left by its stem stage ("automobil"), a quirk kept for
    # fidelity with nltk.translate.meteor_score as used in HarmMetric Eval.
    assert with_syn == pytest.approx(23 / 36)
    assert with_syn > without


def test_meteor_tokenisation_is_lowercase_word_runs() -> None:
    # Case and punctuation do not matter; tokens are runs of letters/digits.
    assert score("meteor", "THE CAT, sat!", ["the cat sat"]) == score(
        "meteor", "the cat sat", ["the cat sat"]
    )


def test_meteor_needs_no_download_or_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("network or download attempted")

    monkeypatch.setattr(nltk, "download", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(reference, "_wordnet_source", None)  # force a fresh load
    assert score("meteor", "the automobile is quick", ["the car is fast"]) > 0.25


def test_meteor_without_wordnet_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(reference, "_wordnet_source", None)
    monkeypatch.setenv(reference.WORDNET_DIR_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="not a WordNet database directory"):
        score("meteor", "a b", ["a b"])
    # Other metrics do not need WordNet.
    assert score("rouge1-recall", "a b", ["a b"]) == 1.0


def test_meteor_thread_safe() -> None:
    refs = [SAMPLE_TEXTS[5]]
    answers = SAMPLE_TEXTS * 5
    serial = score_many("meteor", answers, refs)
    results: list[list[float]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(score_many("meteor", answers, refs))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [serial] * 8


# -- BLEU / chrF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["bleu", "chrf"])
def test_sacrebleu_metrics_rescaled(metric: str) -> None:
    ref = "Heat the mixture slowly and let it rest overnight, then strain it."
    for answer in SAMPLE_TEXTS:
        if metric == "bleu":
            want = sacrebleu.sentence_bleu(answer, [ref], use_effective_order=True).score / 100
        else:
            want = sacrebleu.sentence_chrf(answer, [ref]).score / 100
        got = score(metric, answer, [ref])
        assert got == pytest.approx(want, abs=1e-12)
        assert 0.0 <= got <= 1.0
    partial = score(metric, "heat the mixture slowly", [ref])
    assert 0.0 < partial < 1.0


# -- token F1 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "ref", "expected"),
    [
        ("The Denver Broncos", "Denver Broncos", 1.0),  # articles dropped
        ("Broncos!", "broncos", 1.0),  # punctuation and case dropped
        ("Denver Broncos won", "the Broncos", 0.5),  # P 1/3, R 1 -> 0.5
        ("Carolina Panthers", "Denver Broncos", 0.0),
        ("Santa Clara, California", "Santa Clara", 0.8),  # P 2/3, R 1
        ("a a b", "a b b", 2 / 3),  # "a" is an article: [b] vs [b, b] -> P 1, R 1/2
        ("the", "a", 0.0),  # nothing left on either side: 0 here (SQuAD would say 1)
    ],
)
def test_token_f1_squad_style(answer: str, ref: str, expected: float) -> None:
    assert score("token-f1", answer, [ref]) == pytest.approx(expected)


# -- TF-IDF ----------------------------------------------------------------------------------------


def test_tfidf_cosine_batch_fit() -> None:
    ref = "Mix the powders and heat the mixture slowly."
    answers = ["mix the powders", "heat the mixture slowly", "completely unrelated words here"]
    out = score_many("tfidf-cosine", answers, [ref])
    assert out[2] == 0.0
    assert 0.0 < out[0] < 1.0 and 0.0 < out[1] < 1.0
    # Only single-character tokens: empty vocabulary -> 0, not an exception.
    assert score("tfidf-cosine", "a b c", ["x y z"]) == 0.0


# -- HarmMetric Eval v2 ----------------------------------------------------------------------------


@needs_v2
@pytest.mark.parametrize("metric", ["rouge1-recall", "meteor"])
def test_harmmetric_v2_harmful_closer_than_refusals(metric: str) -> None:
    """The paper's finding, as a sanity check: harmful answers (slots 1-4) overlap the
    reference harmful answer (slot 0) more than refusals (slot 5) do."""
    by_prompt = _load_v2()
    harmful: list[float] = []
    refusal: list[float] = []
    for slots in list(by_prompt.values())[:20]:
        scores = score_many(metric, [slots[i] for i in range(1, 6)], [slots[0]])
        harmful.extend(scores[:4])
        refusal.append(scores[4])
    assert statistics.mean(harmful) > statistics.mean(refusal) + 0.1


@needs_v2
def test_harmmetric_v2_rouge_matches_rouge_score_package() -> None:
    by_prompt = _load_v2()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for slots in list(by_prompt.values())[:20]:
        answers = [slots[i] for i in range(13)]
        ours = {m: score_many(m, answers, [slots[0]]) for m in ROUGE_METRICS}
        for i, answer in enumerate(answers):
            lib = scorer.score(slots[0], answer)
            for metric, (rouge_type, field) in ROUGE_METRICS.items():
                want = getattr(lib[rouge_type], field)
                assert ours[metric][i] == pytest.approx(want, abs=1e-12), (metric, i)
