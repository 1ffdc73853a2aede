"""procedures_db.resolver on the real database: stories, chat queries, conversations,
calibration, determinism and the decision rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from procedures_db.resolver import (
    MAX_LISTED,
    Candidate,
    Context,
    Decision,
    Resolution,
    decide,
    evaluation,
    indexes_for,
    load_model,
    resolve,
    resolve_with,
)
from procedures_db.resolver.datasets import conversations, real_questions
from procedures_db.resolver.examples import ExampleIndex, LabelledText, turn_words
from procedures_db.resolver.features import focus_text, life_event_text, yes_no_question
from procedures_db.resolver.model import fit, fit_trees, scored
from procedures_db.resolver.training import Example, fold_example_indexes, to_group
from procedures_db.search import search
from procedures_db.settings import get_settings

BIRTH = "1.001193"
LICENCE_EXCHANGE = "3.000347"
LICENCE_REISSUE = "3.000348"
CARD_FIRST = {"1.014061", "2.000200", "1.001247"}
LAND = {"1.012783", "1.012786", "1.013978", "1.013831", "1.012753"}
MARRIAGE = "1.000894"


@pytest.fixture(scope="module")
def indexes(full_db_engine):
    return indexes_for(full_db_engine)


@pytest.fixture(scope="module")
def model():
    return load_model()


def best(indexes, model, text: str, current: str | None = None) -> str | None:
    resolution = resolve_with(indexes, model, text, Context(current=current))
    return resolution.best.code if resolution.best else None


def top(indexes, model, text: str, k: int = 3) -> list[str]:
    return [c.code for c in resolve_with(indexes, model, text, Context()).candidates[:k]]


# --- what citizens write -------------------------------------------------------------------

SHORT = [
    ("đổi bằng lái xe", {LICENCE_EXCHANGE}),
    ("doi gplx", {LICENCE_EXCHANGE}),
    ("cấp lại bằng lái bị mất", {LICENCE_REISSUE}),
    ("dang ky khai sinh", {BIRTH}),
    ("đăng ký kết hôn cần giấy tờ gì", {MARRIAGE}),
    ("lam cccd o dau", CARD_FIRST | {"1.014062", "1.012549", "1.012543"}),
    ("bằng lái xe quốc tế", {"3.000353"}),
    ("đăng ký thường trú", {"1.004222"}),
    ("1.001193", {BIRTH}),
]

STORIES = [
    ("mất ví, mất luôn bằng lái, giờ làm lại có phải thi không?", {LICENCE_REISSUE}),
    (
        "Vợ chồng tôi ở quê, con tôi mới sinh được 1 tháng. Giờ làm giấy khai sinh cho cháu thì"
        " cần những giấy tờ gì ạ?",
        {BIRTH},
    ),
    (
        "Tôi năm nay 30 tuổi, đi làm xa nhà đã lâu. Bằng lái xe ô tô của tôi sắp hết hạn, cho"
        " tôi hỏi đổi ở đâu và mất bao lâu?",
        {LICENCE_EXCHANGE},
    ),
]


@pytest.mark.parametrize(("text", "codes"), SHORT + STORIES)
def test_best_candidate_is_an_acceptable_procedure(indexes, model, text, codes):
    assert best(indexes, model, text) in codes


def test_probabilities_sum_to_one_with_none(indexes, model):
    resolution = resolve_with(indexes, model, "đổi bằng lái xe mất bao lâu", Context(), limit=500)
    total = sum(c.probability for c in resolution.candidates) + resolution.none_probability
    assert total == pytest.approx(1.0, abs=1e-4)
    assert resolution.candidates == sorted(resolution.candidates, key=lambda c: -c.probability)


def test_small_talk_and_junk_are_not_answered(indexes, model):
    for text in ("xin chào", "cảm ơn bạn nhiều", "asdfgh qwerty", "hôm nay trời đẹp quá"):
        decision = resolve_with(indexes, model, text, Context()).decision
        assert decision is not Decision.ANSWER, text


def test_focus_is_the_question_and_the_sentence_before():
    text = "Tôi ở Hà Nội. Tôi có xe máy. Tôi bị mất bằng lái. Giờ làm lại ở đâu? Cảm ơn."
    assert focus_text(text) == "Tôi bị mất bằng lái. Giờ làm lại ở đâu?"


def test_a_purpose_clause_still_names_the_procedure(indexes, model):
    # A search box drops "để …" (a purpose names no procedure); in a story it may be the only
    # place the procedure is named.
    text = "Mẹ tôi mất thì tôi phải đến cơ quan nào để đăng ký khai tử cho mẹ của tôi."
    assert best(indexes, model, text) == "1.000656"


def test_life_events_name_the_procedure():
    assert "khai sinh" in life_event_text("con tôi mới sinh được 1 tháng")
    assert life_event_text("đổi bằng lái xe") == ""


# --- the conversation ------------------------------------------------------------------------


def test_follow_up_keeps_the_current_procedure(indexes, model):
    for text in ("còn lệ phí thì sao?", "nộp ở đâu vậy", "làm online được ko", "mất bao lâu"):
        assert best(indexes, model, text, current=BIRTH) == BIRTH, text


def test_filing_on_vneid_is_a_follow_up(indexes, model):
    # VNeID is where the procedure is filed online, not the VNeID account procedure.
    for text in ("làm trên vneid được không", "nop qua vneid dc ko"):
        assert best(indexes, model, text, current=BIRTH) == BIRTH, text


def test_a_new_procedure_named_briefly_switches(indexes, model):
    assert best(indexes, model, "lam cccd o dau", current=BIRTH) in CARD_FIRST | {
        "1.014062",
        "1.012549",
        "1.012543",
    }
    assert best(indexes, model, "sổ đỏ thì sao", current=LICENCE_EXCHANGE) in LAND
    assert best(indexes, model, "thế còn đăng ký kết hôn", current=BIRTH) == MARRIAGE


def test_a_rejected_procedure_is_never_ranked(indexes, model):
    # "không phải, ý em là cấp lại giấy khai sinh" after the card: its words still match the card.
    card_again = "1.014064"
    context = Context(current=card_again, rejected=(card_again,))
    ranked = resolve_with(indexes, model, "cấp lại giấy khai sinh", context).candidates
    assert ranked and card_again not in {c.code for c in ranked}
    # nor at another level: "2.001194" is "Cấp lại thẻ căn cước (thực hiện tại cấp tỉnh)"
    ranked = resolve_with(indexes, model, "cấp lại thẻ căn cước cấp tỉnh", context).candidates
    assert ranked and not {card_again, "2.001194", "1.000757"} & {c.code for c in ranked}
    assert card_again in {
        c.code for c in resolve_with(indexes, model, "cấp lại căn cước", Context()).candidates
    }


SINGLE_STATUS = "1.004873"  # Cấp Giấy xác nhận tình trạng hôn nhân
LAND_TRANSFER = "1.013831"  # Đăng ký biến động (chuyển nhượng, tặng cho, thừa kế)


def test_a_yes_or_no_question_is_told_by_its_last_word():
    for text in (
        "có cần giấy xác nhận ko",
        "co can so ho khau khong a",
        "nộp online đc k ạ",
        "xong chưa",
    ):
        assert yes_no_question(text), text
    for text in ("có cần giấy tờ gì", "nộp ở đâu", "lệ phí bao nhiêu ạ", "", "ko cần gì"):
        assert not yes_no_question(text), text


def test_asking_whether_a_document_is_needed_keeps_the_procedure(indexes, model):
    """Whether a document is needed is asked of the current procedure: never answered outright
    as the procedure that issues the document, the current one is offered. Where to get the
    document, or whether one must apply for it ("có phải xin …": all 14 such dev turns are
    labelled as moves to the issuer), names the issuer."""
    for needed in (
        "vậy có bắt buộc phải có giấy xác nhận tình trạng hôn nhân không",
        "có cần giấy xác nhận độc thân không",
    ):
        resolution = resolve_with(indexes, model, needed, Context(current=MARRIAGE))
        offered = [c.code for c in resolution.candidates[:MAX_LISTED]]
        assert resolution.decision is not Decision.ANSWER or offered[0] == MARRIAGE, needed
        assert MARRIAGE in offered, needed
    for needed, current in (
        ("có cần giấy khám sức khỏe không", LICENCE_EXCHANGE),
        ("có cần hợp đồng công chứng ko", LAND_TRANSFER),
    ):
        assert best(indexes, model, needed, current=current) == current, needed
    for where in (
        "giấy xác nhận tình trạng hôn nhân xin ở đâu",
        "có phải xin giấy xác nhận độc thân không",
    ):
        assert best(indexes, model, where, current=MARRIAGE) == SINGLE_STATUS, where


def test_a_new_procedure_of_the_current_field_is_found(indexes, model):
    # "cấp lại" alone names many procedures; after a licence exchange, the licence's is meant.
    text = "còn cấp lại khi bị mất thì sao"
    assert best(indexes, model, text, current=LICENCE_EXCHANGE) == LICENCE_REISSUE


def test_conversation_dev_part_turns(indexes, model):
    """Each turn in the context of the previous turn's procedure (the dev conversations)."""
    rows = conversations("dev")
    assert len(rows) >= 100
    right = total = 0
    for conversation in rows:
        current = None
        for turn in conversation.turns:
            if not turn.codes:  # out of scope: nothing to name, the procedure stays
                continue
            total += 1
            right += best(indexes, model, turn.text, current) in turn.codes
            current = min(turn.codes)
    assert right / total >= 0.85


def test_real_question_dev_part_top_three(indexes, model):
    rows = [c.turns[0] for c in real_questions("dev") if c.turns[0].codes]
    assert len(rows) >= 80
    hits = sum(bool(set(top(indexes, model, t.text)) & t.codes) for t in rows)
    assert hits / len(rows) >= 0.75


MATERNITY = "2.000693"  # Giải quyết hưởng chế độ thai sản


def remembered_question(indexes, text: str, codes: tuple[str, ...], key: str) -> LabelledText:
    return LabelledText(tuple(indexes.names.terms(text)), codes, key)


def test_a_remembered_question_brings_its_procedure(indexes):
    """A story told in other words than the record's: the nearest remembered question's
    procedure scores highest; a message near none scores nothing."""
    told = "Vợ tôi vừa sinh con, tôi là lao động nam thì được nghỉ mấy ngày, hồ sơ thế nào?"
    near = ExampleIndex([remembered_question(indexes, told, (MATERNITY,), "p1")], indexes.records)
    scores = near.scores(indexes.names.terms("vo minh moi sinh em be, chong dc nghi bao lau"))
    assert int(np.argmax(scores)) == indexes.records.by_code[MATERNITY]
    assert not near.scores(indexes.names.terms("xin chào")).any()


def test_the_regression_over_remembered_questions_tells_close_procedures_apart(indexes):
    """Two remembered stories share most words; the regression weighs the words that differ,
    so each new message goes to the procedure of the story it matches in those words."""
    foreign_birth = "2.000528"  # Thủ tục đăng ký khai sinh có yếu tố nước ngoài
    rows = [
        remembered_question(
            indexes,
            "con tôi mới sinh ở bệnh viện, làm giấy khai sinh cho cháu ở đâu",
            (BIRTH,),
            "a",
        ),
        remembered_question(
            indexes,
            "con tôi mới sinh, bố cháu là người nước ngoài, làm giấy khai sinh cho cháu ở đâu",
            (foreign_birth,),
            "b",
        ),
    ]
    index = ExampleIndex(rows, indexes.records)
    plain, foreign = indexes.records.by_code[BIRTH], indexes.records.by_code[foreign_birth]
    told = index.ridge_scores(indexes.names.terms("chồng tôi người nước ngoài, con mới sinh"))
    assert told[foreign] > told[plain]
    told = index.ridge_scores(indexes.names.terms("vợ sinh ở bệnh viện huyện, làm khai sinh"))
    assert told[plain] > told[foreign]
    assert not index.ridge_scores(indexes.names.terms("xin chào")).any()
    assert not ExampleIndex([], indexes.records).ridge_scores(["sinh"]).any()


def test_the_regression_onto_fields_reaches_procedures_nobody_asked_about(indexes):
    """A story about a birth tells the civil-status field: marriage registration, asked by
    no remembered question, scores as its field does; a licence procedure scores nothing."""
    told = "con tôi mới sinh ở bệnh viện, làm giấy khai sinh cho cháu ở đâu"
    index = ExampleIndex([remembered_question(indexes, told, (BIRTH,), "a")], indexes.records)
    terms = indexes.names.terms("vợ sinh con ở bệnh viện huyện, cần làm giấy tờ gì")
    by_field = index.field_scores(terms)
    birth, marriage = indexes.records.by_code[BIRTH], indexes.records.by_code[MARRIAGE]
    assert by_field[marriage] == by_field[birth] > 0
    assert index.ridge_scores(terms)[marriage] == 0
    assert by_field[indexes.records.by_code[LICENCE_EXCHANGE]] == 0
    assert not ExampleIndex([], indexes.records).field_scores(["sinh"]).any()


def test_how_often_a_procedure_was_asked_counts_its_remembered_questions(indexes):
    """The prior the ranking reads (`asked_before`): per procedure, the remembered questions
    about it, a question with two acceptable codes counting for each; a page of its own fold
    is not counted (cross-fitting)."""
    from procedures_db.resolver.training import _fold_of

    a, b = "https://example.vn/a", "https://example.vn/b"
    rows = [
        remembered_question(indexes, "mất bằng lái", (LICENCE_REISSUE,), a),
        remembered_question(indexes, "vợ sinh con", (MATERNITY, LICENCE_REISSUE), b),
    ]
    asked = ExampleIndex(rows, indexes.records).asked
    assert asked[indexes.records.by_code[LICENCE_REISSUE]] == 2
    assert asked[indexes.records.by_code[MATERNITY]] == 1
    assert asked.sum() == 3
    fold = _fold_of(a)
    per_fold = fold_example_indexes(indexes, rows)[fold]
    assert per_fold.asked[indexes.records.by_code[LICENCE_REISSUE]] == int(_fold_of(b) != fold)


def test_a_turn_that_keeps_its_procedure_is_told_by_its_words(indexes):
    """The conversations' turns teach whether a message keeps the current procedure (a
    follow-up about its papers) or moves (names something else); follow-ups are not remembered
    questions: they name no procedure, so they bring none and are not counted as asked."""
    from procedures_db.resolver.datasets import Conversation, Turn
    from procedures_db.resolver.training import remembered

    chats = [
        Conversation(
            f"c{i}",
            f"https://example.vn/{i}",
            (
                Turn("đổi bằng lái xe hết hạn", frozenset({LICENCE_EXCHANGE})),
                Turn(kept, frozenset({LICENCE_EXCHANGE})),
                Turn(moved, frozenset({BIRTH}), switch=True),
            ),
            "multiturn",
        )
        for i, (kept, moved) in enumerate(
            [
                ("có cần giấy khám sức khỏe không", "còn làm giấy khai sinh cho con thì sao"),
                ("phải mang ảnh thẻ không", "thế còn khai sinh cho bé"),
                ("bản photo cccd có cần công chứng ko", "con mới sinh đăng ký khai sinh ở đâu"),
            ]
        )
    ]
    rows = remembered(indexes, chats)
    assert [(r.current, r.follow_up) for r in rows[:3]] == [
        (None, False),
        (LICENCE_EXCHANGE, True),
        (LICENCE_EXCHANGE, False),
    ]
    index = ExampleIndex(rows, indexes.records)

    def stay(text: str) -> float:
        return index.stay_score([*indexes.names.terms(text), *turn_words(text)])

    assert stay("giấy khám sức khỏe lấy ở bệnh viện nào cũng được à") > 0
    assert stay("còn khai sinh thì sao") < 0
    # Named twice per conversation (first turn, switch), never by the follow-ups.
    assert index.asked.sum() == 6
    assert not index.scores(indexes.names.terms("phải mang ảnh thẻ không")).any()


def test_training_reads_no_remembered_question_of_its_own_page(indexes):
    from procedures_db.resolver.training import FOLDS, _fold_of

    text = "làm lại bằng lái xe bị mất"
    example = remembered_question(indexes, text, (LICENCE_REISSUE,), "https://example.vn/a")
    per_fold = fold_example_indexes(indexes, [example])
    assert len(per_fold) == FOLDS
    code = indexes.records.by_code[LICENCE_REISSUE]
    for fold, index in per_fold.items():
        seen = index.scores(indexes.names.terms(text))[code] > 0
        assert seen == (fold != _fold_of(example.key))


def test_conversation_turns_are_learned_typed_without_accents_too():
    from procedures_db.resolver.training import WEIGHTS, unaccented

    page = "https://example.vn/hoi-dap"
    turn = Example("thế còn lệ phí?", frozenset({BIRTH}), Context(current=BIRTH), "multiturn", page)
    typed_plain = Example(
        "con le phi?", frozenset({BIRTH}), Context(current=BIRTH), "multiturn", page
    )
    story = Example(
        "Con tôi mới sinh, làm khai sinh ở đâu?", frozenset({BIRTH}), Context(), "real", page
    )
    copies = unaccented([turn, typed_plain, story])
    assert [c.text for c in copies] == ["the con le phi?"]
    copy = copies[0]
    assert (copy.codes, copy.context, copy.key) == (turn.codes, turn.context, turn.key)
    assert copy.source == "unaccented" and WEIGHTS["unaccented"] > 0


def test_the_model_remembers_the_dev_questions_only(indexes, model):
    keys = {e.key for e in model.examples}
    assert len(model.examples) >= 500
    test_pages = {c.url for c in real_questions("test") + conversations("test")}
    assert not keys & test_pages
    assert {c.url for c in real_questions("dev")} <= keys | {
        c.url for c in real_questions("dev") if not c.turns[0].codes
    }


# --- calibration, decisions, determinism -------------------------------------------------------


def test_model_is_calibrated_out_of_fold(model):
    """Out of fold, the confidence the dialogue reads is calibrated: expected calibration error
    at most 0.06, and every well-filled bin (25 or more) within 0.2 of how often it is right."""
    bins = [b for b in model.meta["reliability"] if b["n"]]
    total = sum(b["n"] for b in bins)
    ece = sum(b["n"] * abs(b["mean_probability"] - b["accuracy"]) for b in bins) / total
    assert ece <= 0.06, model.meta["reliability"]
    for b in bins:
        if b["n"] >= 25:
            assert abs(b["mean_probability"] - b["accuracy"]) <= 0.2, b
    assert 0.3 < model.temperature < 3.0


def test_thresholds_come_from_the_risk_coverage_curves(model):
    """First messages: suggestions (an answer with alternatives) wrong for at most 1.5 % of the
    real questions, plain answers for half that; conversation turns: 3 % and half that."""
    t = model.thresholds
    for curve_name, share, suffix in (
        ("risk_coverage_real", 0.015, ""),
        ("risk_coverage_turns", 0.03, "_in_conversation"),
    ):
        curve = {p["threshold"]: p for p in model.meta[curve_name]}
        assert curve[t[f"suggest{suffix}"]]["wrong_share"] <= share
        assert curve[t[f"answer{suffix}"]]["wrong_share"] <= share / 2
        assert t[f"suggest{suffix}"] <= t[f"answer{suffix}"]


def test_ask_threshold_comes_from_the_ask_curve(model):
    """Asking which one starts where a list names the most in-scope procedures less the
    out-of-scope questions it would list, never above 0.5 (none likelier than some)."""
    curve = model.meta["ask_curve_real"]
    chosen = next(p for p in curve if p["threshold"] == model.thresholds["ask"])
    assert model.thresholds["ask"] <= 0.5
    for p in curve:
        if p["threshold"] <= 0.5:
            gain = p["named"] - p["out_of_scope_listed"]
            assert gain <= chosen["named"] - chosen["out_of_scope_listed"], p


def test_choose_ask_prefers_the_highest_of_equal_balances():
    curve = [
        {"threshold": 0.3, "named": 10, "out_of_scope_listed": 5},
        {"threshold": 0.4, "named": 9, "out_of_scope_listed": 4},
        {"threshold": 0.5, "named": 6, "out_of_scope_listed": 3},
        {"threshold": 0.6, "named": 9, "out_of_scope_listed": 0},
    ]
    assert evaluation.choose_ask(curve, 0.5) == 0.4
    assert evaluation.choose_ask([], 0.5) == 0.5


def candidate(code: str, probability: float) -> Candidate:
    return Candidate(code, code, probability)


def test_decision_rule():
    t = {"answer": 0.9, "suggest": 0.6, "ask": 0.5}
    assert decide(t, [], 0.0, False) is Decision.NOT_FOUND
    assert decide(t, [candidate("a", 0.95)], 0.95, False) is Decision.ANSWER
    assert decide(t, [candidate("a", 0.5)], 0.92, False) is Decision.ANSWER  # same-named variants
    assert decide(t, [candidate("a", 0.7), candidate("b", 0.2)], 0.7, False) is Decision.SUGGEST
    assert decide(t, [candidate("a", 0.3), candidate("b", 0.25)], 0.3, False, 0.4) is Decision.ASK
    assert decide(t, [candidate("a", 0.05)], 0.05, False, 0.9) is Decision.NOT_FOUND
    # Turns after the first message read their own thresholds (when the model has them).
    turns = {**t, "answer_in_conversation": 0.95, "suggest_in_conversation": 0.5}
    assert decide(turns, [candidate("a", 0.92)], 0.92, False) is Decision.ANSWER
    assert decide(turns, [candidate("a", 0.92)], 0.92, False, 0.0, True) is Decision.SUGGEST
    assert decide(turns, [candidate("a", 0.55)], 0.55, False, 0.0, True) is Decision.SUGGEST
    assert decide(t, [candidate("a", 0.55)], 0.55, False, 0.0, True) is Decision.ASK
    assert decide(t, [candidate("a", 0.05)], 0.05, True, 0.9) is Decision.ANSWER  # a typed code


def test_the_build_runs_with_one_hash_salt(monkeypatch, tmp_path):
    """Same inputs, same model across processes: `train` runs itself again with a fixed
    PYTHONHASHSEED when it was started without one."""
    from procedures_db.resolver import __main__ as cli

    calls = []

    def execve(path, argv, env):
        calls.append((argv, env["PYTHONHASHSEED"]))
        raise SystemExit(0)

    monkeypatch.setattr(cli.os, "execve", execve)
    monkeypatch.setattr(cli, "_hash_salted", lambda: True)
    out = tmp_path / "model.json"
    with pytest.raises(SystemExit):
        cli.main(["train", "--out", str(out)])
    assert calls == [
        ([cli.sys.executable, "-m", "procedures_db.resolver", "train", "--out", str(out)], "0")
    ]


def test_same_build_same_ranking(indexes):
    """Two trainings on the same examples give the same trees and weights."""
    texts = [("đổi bằng lái xe", {LICENCE_EXCHANGE}), ("đăng ký khai sinh", {BIRTH})]
    texts += [(t, c) for t, c in STORIES] + [("xin chào", set())]
    examples = [
        Example(text, frozenset(codes), Context(current=current), "search", f"k{i}")
        for i, (text, codes) in enumerate(texts * 3)
        for current in (None, MARRIAGE)
    ]
    groups = [g for g in (to_group(indexes, e) for e in examples) if g is not None]
    first, second = fit_trees(groups), fit_trees(groups)
    assert first.model_to_string() == second.model_to_string()
    a = fit(scored(groups, first), ("tree_score",), ("b",) * len(groups[0].g))
    b = fit(scored(groups, second), ("tree_score",), ("b",) * len(groups[0].g))
    assert np.array_equal(a.w, b.w) and np.array_equal(a.v, b.v)


_FEATURE_DIGEST = """
import hashlib, numpy as np
from procedures_db.db import get_engine
from procedures_db.resolver import Context, indexes_for, load_model
from procedures_db.resolver.datasets import real_questions
from procedures_db.resolver.features import candidate_matrix, none_vector, view
indexes = indexes_for(get_engine())
examples = load_model().example_index(indexes.records)
digest = hashlib.sha256()
for row in real_questions("dev")[:80]:
    v = view(indexes.names, indexes.records, row.turns[0].text, Context(), None, examples)
    for part in (v.candidates, candidate_matrix(v, indexes.records), none_vector(v)):
        digest.update(np.ascontiguousarray(part, dtype=float).tobytes())
print(digest.hexdigest())
"""


def test_features_do_not_depend_on_the_hash_seed(full_db_url):
    """The Rasa action server and the web server run with a random hash salt, the build with
    one: a sum over a set would change its last bits, and the order of tied candidates, with
    the salt. The same messages give the same features, to the bit, under two salts."""
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PROCEDURES_DB_URL": full_db_url}
        done = subprocess.run(
            [sys.executable, "-c", _FEATURE_DIGEST],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_resolve_is_repeatable(use_full_db):
    text = "Tôi mua xe máy cũ, muốn sang tên chính chủ thì làm ở đâu?"
    assert resolve(text) == resolve(text)


# --- one ranking for every caller ---------------------------------------------------------------


def test_staff_search_ranks_like_the_bot(full_db_engine, indexes, model):
    text = "mất ví, mất luôn bằng lái, giờ làm lại có phải thi không?"
    hits = search(text, 5, engine=full_db_engine)
    assert [h.code for h in hits] == top(indexes, model, text, 5)
    assert hits[0].score == pytest.approx(
        resolve_with(indexes, model, text, Context()).candidates[0].probability, abs=1e-4
    )


def test_search_filters_and_typed_codes(full_db_engine):
    assert search("1.001193", engine=full_db_engine)[0].code == BIRTH
    hits = search("đăng ký khai sinh", 10, engine=full_db_engine, level="xa")
    assert hits and all("xa" in h.levels for h in hits)
    listed = search("", 5, engine=full_db_engine, level="tinh")
    assert listed and all(h.score == 0.0 for h in listed)


# --- the question sets ---------------------------------------------------------------------------


def test_question_sets_keep_their_sources():
    rows = real_questions()
    assert len(rows) >= 250
    assert all(r.url and r.url.startswith("http") for r in rows)
    assert all(c.url for c in conversations()) and len(conversations()) >= 150
    assert {r.part for r in rows} == {"dev", "test"}
    # One page never feeds both parts.
    by_url: dict[str, set[str]] = {}
    for r in rows + conversations():
        by_url.setdefault(r.url, set()).add(r.part)
    assert all(len(p) == 1 for p in by_url.values())


def test_a_file_names_a_known_part(tmp_path, monkeypatch):
    from procedures_db.resolver import datasets

    (tmp_path / "real_questions").mkdir()
    (tmp_path / "real_questions" / "x.yml").write_text("part: final\nquestions: []\n")
    monkeypatch.setattr(datasets, "DATA", tmp_path)
    with pytest.raises(ValueError, match=r"x\.yml: part must be one of"):
        datasets.real_questions()


def test_question_codes_exist(indexes):
    for row in real_questions() + conversations():
        for turn in row.turns:
            unknown = turn.codes - set(indexes.records.by_code)
            assert not unknown, (row.id, unknown)


def test_story_examples_for_the_nlu_are_in_step():
    from scripts import nlu_story_examples

    assert nlu_story_examples.main(["--check"]) == 0, "run scripts/nlu_story_examples.py"


def test_model_file_names_its_features():
    data = json.loads(get_settings().resolver_model.read_text(encoding="utf-8"))
    assert data["format"].startswith("tthc-resolver/")
    assert data["trees"]


def test_alternatives_offer_one_variant_per_name():
    def candidate(code: str, name: str, p: float, family: str) -> Candidate:
        return Candidate(code, name, p, family=family)

    resolution = Resolution(
        [
            candidate("1", "Cấp lại thẻ căn cước", 0.40, "cap lai the can cuoc"),
            candidate(
                "2", "Cấp lại thẻ căn cước (thực hiện tại cấp tỉnh)", 0.30, "cap lai the can cuoc"
            ),
            candidate("3", "Cấp đổi thẻ căn cước", 0.20, "cap doi the can cuoc"),
            candidate("4", "Cấp đổi thẻ căn cước (cấp tỉnh)", 0.10, "cap doi the can cuoc"),
            candidate("5", "Khai báo mất", 0.09, ""),  # no family known: its own
        ],
        none_probability=0.0,
        confidence=0.4,
        decision=Decision.ASK,
    )
    assert [c.code for c in resolution.alternatives(share=0.1)] == ["3", "5"]


def test_resolved_candidates_carry_their_family(indexes, model):
    resolution = resolve_with(indexes, model, "cấp lại thẻ căn cước", Context())
    families = {c.family for c in resolution.candidates}
    assert all(families) and len(families) < len(resolution.candidates)
