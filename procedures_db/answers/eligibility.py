"""Am I allowed / do I have to …? Quote the record's lines that speak to the question.

Candidate lines come from the conditions (yêu cầu, điều kiện), the subjects (đối tượng) and
the case-specific papers; a line is relevant when it shares the question's own words (those not
in the procedure's name). When none does, the answer says the record does not settle it.
"""

from __future__ import annotations

import re
from typing import Any

from procedures_db.answers.documents import plan_documents
from procedures_db.facts import clean, trim
from procedures_db.text import normalize_message, tokens

# Accent-folded words that only shape a yes/no question; they never make a line relevant.
_QUESTION_WORDS = frozenset(
    [
        "co",
        "duoc",
        "khong",
        "phai",
        "la",
        "lam",
        "thu",
        "tuc",
        "toi",
        "em",
        "minh",
        "anh",
        "chi",
        "ban",
        "con",
        "nay",
        "the",
        "nao",
        "gi",
        "dieu",
        "kien",
        "yeu",
        "cau",
        "ai",
        "o",
        "dau",
        "muon",
        "can",
        "xin",
        "hoi",
        "cho",
        "a",
        "nhe",
        "vay",
        "thi",
        "va",
        "hay",
        "hoac",
        "cua",
        "voi",
        "nhu",
        "the",
        "nao",
    ]
)
# "có được … không", "có phải … không", "có cần … không", "bắt buộc": am I allowed / must I.
_YES_NO = re.compile(
    r"\b(?:co duoc|duoc khong|co phai|phai khong|co can|can khong|bat buoc|khong$)"
)
_LINE_SPLIT = re.compile(r"\n+|;\s+|(?<=\.)\s+(?=[-+*•A-ZĐ])")
QUOTE_LIMIT = 220
MAX_QUOTES = 3


def question_words(question: str, name: str) -> set[str]:
    """The question's words that are neither in the procedure name nor question phrasing."""
    own = set(tokens(name))
    return {w for w in tokens(normalize_message(question)) if w not in own | _QUESTION_WORDS} - {
        w for w in tokens(question) if w.isdigit() and len(w) > 3
    }


def _lines(details: Any) -> list[tuple[str, str]]:
    """(section, line) pairs the record offers as answers to an eligibility question."""
    found = []
    for section, text in (
        ("Yêu cầu, điều kiện", details.requirements),
        ("Đối tượng thực hiện", details.target_subjects),
    ):
        found += [(section, part) for part in _LINE_SPLIT.split(clean(text) or "") if part]
    plan = plan_documents(list(details.documents))
    found += [("Hồ sơ, trường hợp riêng", paper.name) for paper in plan.special]
    found += [("Hồ sơ theo trường hợp", case) for case in plan.cases]
    found += [("Lưu ý trong hồ sơ", note) for note in plan.notes]
    return [(section, clean(line) or "") for section, line in found if clean(line)]


def relevant_lines(details: Any, question: str) -> list[tuple[str, str]]:
    words = question_words(question, details.name)
    if not words:
        return []
    scored = []
    for position, (section, line) in enumerate(_lines(details)):
        shared = words & set(tokens(line))
        if shared:
            scored.append((-len(shared), position, section, line))
    scored.sort()
    best = -scored[0][0] if scored else 0
    # A line sharing a single word of a longer question is noise.
    needed = 1 if len(words) <= 2 else min(2, best)
    return [(s, line) for score, _, s, line in scored if -score >= needed][:MAX_QUOTES]


def asks_yes_no(question: str) -> bool:
    return bool(_YES_NO.search(" ".join(tokens(normalize_message(question)))))


def eligibility_text(details: Any, question: str) -> str | None:
    """Quoted lines, or None unless it is a yes/no question with words of its own."""
    if not asks_yes_no(question) or not question_words(question, details.name):
        return None
    quotes = relevant_lines(details, question)
    if not quotes:
        return "Hồ sơ thủ tục không nói rõ trường hợp bạn hỏi. " + (
            f"Điều kiện chung: {trim(clean(details.requirements), 300)}"
            if clean(details.requirements)
            else "Thủ tục không ghi điều kiện riêng."
        )
    lines = ["Những dòng trong hồ sơ thủ tục liên quan đến câu hỏi của bạn:"]
    lines += [f"- {section}: «{trim(line, QUOTE_LIMIT)}»" for section, line in quotes]
    lines.append("Bạn đối chiếu với trường hợp của mình; cơ quan tiếp nhận sẽ xác định cuối cùng.")
    return "\n".join(lines)
