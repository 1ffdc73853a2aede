"""The asked-fact model (procedures_db.asked): what it learns from, how it is built and read,
and how the bot uses it for a conversation's later turns."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from actions.questions import Fact, facts_asked
from procedures_db import asked
from procedures_db.resolver.datasets import intent_examples


@pytest.fixture(scope="module")
def model() -> asked.FactModel:
    return asked.load_fact_model()  # built by `make train`


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("còn lệ phí thì sao", "fee"),
        ("hết bao nhiêu tiền vậy ad", "fee"),
        ("mang theo gì", "documents"),
        ("cần chuẩn bị những giấy tờ gì ạ", "documents"),
        ("bao giờ thì có kết quả", "time"),
        ("nộp online được ko", "online"),
        ("nộp ở đâu vậy", "place"),
        ("các bước làm thế nào", "steps"),
        # the previous question, about another procedure: asks no fact of its own
        ("còn lltp thì sao", "overview"),
        ("thế còn đăng ký kết hôn?", "overview"),
    ],
)
def test_short_follow_ups(model: asked.FactModel, text: str, fact: str) -> None:
    assert model.best(text)[0] == fact


def test_probabilities_are_a_distribution_over_the_facts(model: asked.FactModel) -> None:
    p = model.probabilities("lệ phí bao nhiêu")
    assert set(p) == set(asked.FACTS)
    assert sum(p.values()) == pytest.approx(1.0)
    assert set(model.probabilities("")) == set(asked.FACTS)  # no known word: the priors


def test_the_model_was_measured_out_of_fold(model: asked.FactModel) -> None:
    later = model.meta["out_of_fold"]["later"]
    assert later["of"] >= 1000 and 0.0 < later["share"] <= 1.0


def test_the_bot_and_the_model_know_the_same_facts() -> None:
    assert {fact.value for fact in Fact} == set(asked.FACTS)
    assert set(asked.INTENT_FACTS.values()) == set(asked.FACTS)


def _rows() -> list[asked.Example]:
    texts = {
        "fee": ["lệ phí bao nhiêu", "hết bao nhiêu tiền", "mất phí không"],
        "documents": ["cần giấy tờ gì", "hồ sơ gồm những gì", "mang theo gì"],
        "place": ["nộp ở đâu", "làm ở đâu", "đến chỗ nào nộp"],
    }
    return [asked.Example(t, f, "g", "nlu") for f, ts in texts.items() for t in ts]


def test_training_is_deterministic_and_the_saved_model_reads_the_same(tmp_path) -> None:
    first, second = asked.fit(_rows()), asked.fit(_rows())
    assert np.array_equal(first.coef, second.coef)
    path = tmp_path / "asked.json"
    first.save(path)
    loaded = asked.FactModel.load(path)
    for text in ("phí bao nhiêu", "nộp chỗ nào", "giấy tờ"):
        a, b = first.probabilities(text), loaded.probabilities(text)
        assert a == pytest.approx(b, abs=1e-4)
    assert loaded.best("lệ phí là bao nhiêu")[0] == "fee"


def test_same_question_again_is_learned_as_no_fact_of_its_own() -> None:
    again = asked.Example("còn lltp thì sao", "fee", "g", "later", previous="fee")
    assert again.label == "overview" and again.answered("overview") == "fee"
    named = asked.Example("còn lệ phí thì sao", "fee", "g", "later", previous="time")
    assert named.label == "fee" and named.answered("fee") == "fee"
    assert asked.Example("lệ phí?", "fee", "g", "later", previous="fee").label == "fee"


def test_examples_come_from_the_dev_parts_and_the_nlu_data() -> None:
    rows = asked.examples()
    assert {row.kind for row in rows} == {"real", "first", "later", "nlu"}
    assert all(row.fact in asked.FACTS for row in rows)
    from procedures_db.resolver.datasets import conversations, real_questions

    # the frozen test part's published questions (short turns like "còn lệ phí thì sao?" or
    # "đăng ký người phụ thuộc cần giấy tờ gì" are written in both parts)
    firsts = [c.turns[0].text for c in real_questions("test") + conversations("test")]
    test_texts = {text for text in firsts if len(text.split()) >= 12}
    assert len(test_texts) >= 50
    assert not test_texts & {row.text for row in rows}


def test_nlu_examples_lose_their_entity_markup() -> None:
    examples = intent_examples()
    assert not any("](" in e.text or "[" in e.text for e in examples)
    assert any(e.names_procedure for e in examples if e.intent == "ask_fee")
    assert any(not e.names_procedure for e in examples if e.intent == "ask_fee")


def test_later_turns_read_the_model_first_messages_the_intent() -> None:
    # the intent decides a first message; the model a later turn
    assert facts_asked("ask_fee", "thế còn mang theo gì") == [Fact.FEE]
    assert facts_asked("ask_fee", "thế còn mang theo gì", in_conversation=True) == [Fact.DOCUMENTS]
    # a button's payload names its intent exactly
    payload = '/ask_documents{"procedure_code": "1.000001"}'
    assert facts_asked("ask_documents", payload, in_conversation=True) == [Fact.DOCUMENTS]


def test_without_a_model_the_intent_decides(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("ASKED_MODEL", str(tmp_path / "missing.json"))
    from procedures_db.settings import get_settings

    get_settings.cache_clear()
    try:
        with pytest.raises(asked.FactModelMissing):
            asked.load_fact_model()
        with caplog.at_level(logging.WARNING):
            assert facts_asked("ask_fee", "mang theo gì", in_conversation=True) == [Fact.FEE]
        assert "no asked-fact model" in caplog.text
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_a_model_of_another_format_is_refused(tmp_path) -> None:
    path = tmp_path / "asked.json"
    path.write_text('{"format": 0}', encoding="utf-8")
    with pytest.raises(asked.FactModelMissing, match="make train"):
        asked.FactModel.load(path)
