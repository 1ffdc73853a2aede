"""The end-to-end evaluation script and its question set."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from procedures_db.queries import get_procedure
from procedures_db.text import canonical
from scripts.eval_e2e import DEFAULT_QUESTIONS, Question, evaluate, load_questions, percentile

# Online-level facts are the bot's plain words for the record's level, not record text.
ONLINE_WORDS = (
    "chưa nộp trực tuyến được",
    "trực tuyến một phần",
    "hoàn toàn trực tuyến",
    "chưa ghi rõ",
)


def test_question_set_is_large_and_well_formed() -> None:
    questions = load_questions(DEFAULT_QUESTIONS)
    assert len(questions) >= 150
    assert len({code for q in questions for code in q.codes}) >= 60
    assert len({q.text for q in questions}) == len(questions)
    assert sum(q.text.isascii() for q in questions) >= 10  # typed without accents too


def _record_text(code: str, engine) -> str:
    details = get_procedure(code, engine=engine)
    assert details is not None, code
    values = [json.dumps(dataclasses.asdict(details), ensure_ascii=False, default=str)]
    for method in details.methods:
        values += [f"{a:,}".replace(",", ".") for a in method.fee_amounts]
    return canonical(" ".join(values))


def test_expected_facts_come_from_the_records(full_db_engine) -> None:
    for question in load_questions(DEFAULT_QUESTIONS):
        if question.fact in ONLINE_WORDS:
            continue
        text = _record_text(question.codes[0], full_db_engine)
        assert canonical(question.fact) in text, (question.text, question.fact)


async def _fake_rasa(replies: list[dict]) -> TestServer:
    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        assert body["sender"].startswith("e2e-")
        return web.json_response(replies)

    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", webhook)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_first_reply_must_name_the_code_and_the_fact() -> None:
    question = Question("đổi bằng lái mất bao lâu", ("3.000347",), "5 ngày làm việc")
    cases = [
        ([{"text": "Mã TTHC: 3.000347 ... 5 Ngày làm việc"}], (True, True)),
        ([{"text": "Mã TTHC: 3.000347"}, {"text": "5 ngày làm việc"}], (True, False)),
        ([{"text": "1. Đổi giấy phép lái xe (mã 3.000347)"}], (True, False)),
        ([], (False, False)),
    ]
    for replies, (code_ok, fact_ok) in cases:
        server = await _fake_rasa(replies)
        try:
            outcome = await asyncio.to_thread(evaluate, question, str(server.make_url("/")), 5.0)
        finally:
            await server.close()
        assert (outcome.code_ok, outcome.fact_ok) == (code_ok, fact_ok), replies
        assert outcome.passed is (code_ok and fact_ok)


def test_unreachable_server_is_a_failure_not_a_crash() -> None:
    question = Question("x", ("1.000000",), "y")
    outcome = evaluate(question, "http://127.0.0.1:9", 2.0)
    assert not outcome.passed and outcome.first_reply.startswith("<error")


def test_percentile_nearest_rank() -> None:
    values = [0.1 * i for i in range(1, 21)]
    assert percentile(values, 0.5) == values[9]
    assert percentile(values, 0.95) == values[18]
    assert Path(DEFAULT_QUESTIONS).exists()
