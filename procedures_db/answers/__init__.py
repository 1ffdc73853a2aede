"""What a person is told about a procedure: the one owner of that wording.

The bot (actions/), the staff pages and the JSON API (webapp/) and the CLI all build their text
from here; channels only shape it (length, buttons). Values come from `procedures_db.facts`.
"""

from procedures_db.answers.documents import DocumentPlan, plan_documents
from procedures_db.answers.place import PlaceAnswer, place_answer
from procedures_db.answers.text import (
    FACT_LABELS,
    Reply,
    answer_facts,
    key_facts,
    procedure_reply,
    summary_script,
)
from procedures_db.answers.values import fee_summary, online_summary, time_summary

__all__ = [
    "FACT_LABELS",
    "DocumentPlan",
    "PlaceAnswer",
    "Reply",
    "answer_facts",
    "fee_summary",
    "key_facts",
    "online_summary",
    "place_answer",
    "plan_documents",
    "procedure_reply",
    "summary_script",
    "time_summary",
]
