"""Channel shaping of the answers worded in `procedures_db.answers` (the only wording owner).

Here: the Rasa-side extras of a reply: the button that asks for the rest of a long answer and
the one-tap rating buttons (Zalo's connector turns buttons into numbered replies).
"""

from __future__ import annotations

import json
from typing import Any

from actions.questions import Fact
from procedures_db.answers import Reply, procedure_reply
from procedures_db.answers.text import MORE_DOCUMENTS
from procedures_db.facts import trim
from procedures_db.profile import ProvinceProfile
from procedures_db.queries import ProcedureDetails

__all__ = [
    "FULL_DOCUMENTS_INTENT",
    "HELPFUL",
    "WRONG",
    "buttons_for",
    "procedure_answer",
    "trim",
    "wants_full",
]

FULL_DOCUMENTS_INTENT = "ask_documents"
FEEDBACK_INTENT = "feedback"
HELPFUL, WRONG = "helpful", "wrong"
FEEDBACK_TITLES = {HELPFUL: "Hữu ích", WRONG: "Chưa đúng"}


def full_documents_payload(code: str) -> str:
    entities = json.dumps({"procedure_code": code}, separators=(",", ":"))
    return f"/{FULL_DOCUMENTS_INTENT}{entities}"


def wants_full(text: str) -> bool:
    """The "Xem đầy đủ hồ sơ" button (a typed message never starts with the payload's slash)."""
    return text.startswith(f"/{FULL_DOCUMENTS_INTENT}")


def procedure_answer(
    details: ProcedureDetails,
    facts: list[Fact],
    profile: ProvinceProfile,
    *,
    level_scale: bool = False,
    question: str = "",
    full_documents: bool = False,
) -> Reply:
    return procedure_reply(
        details,
        [fact.value for fact in facts],
        profile,
        level_scale=level_scale,
        question=question,
        full_documents=full_documents,
    )


def feedback_payload(code: str, rating: str) -> str:
    entities = json.dumps({"procedure_code": code, "rating": rating}, separators=(",", ":"))
    return f"/{FEEDBACK_INTENT}{entities}"


def buttons_for(reply: Reply, code: str) -> list[dict[str, Any]]:
    """ "Xem đầy đủ hồ sơ" when there is more, then the one-tap rating of the answer."""
    buttons = []
    if reply.more == "documents":
        buttons.append({"title": MORE_DOCUMENTS, "payload": full_documents_payload(code)})
    buttons += [
        {"title": title, "payload": feedback_payload(code, rating)}
        for rating, title in FEEDBACK_TITLES.items()
    ]
    return buttons
