"""Several procedures match: offer them as buttons and numbers, then read the citizen's pick."""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.formatting import trim
from actions.questions import parse_choice, procedure_words
from procedures_db.search import short_title
from procedures_db.text import tokens

MAX_CANDIDATES = 5
CANDIDATES_SLOT = "procedure_candidates"
PENDING_FACTS_SLOT = "pending_facts"


def choose_payload(code: str) -> str:
    return "/choose_procedure" + json.dumps({"procedure_code": code}, separators=(",", ":"))


def offer(
    dispatcher: CollectingDispatcher, hits: list[Any], facts: list[str]
) -> list[dict[str, Any]]:
    """List up to five candidates (the resolver chose them), numbered and as buttons; remember
    them and the question."""
    candidates = [{"code": hit.code, "name": hit.name} for hit in hits[:MAX_CANDIDATES]]
    lines = [
        "Có một số thủ tục gần với câu hỏi của bạn. Bạn hỏi về thủ tục nào?"
        if len(candidates) > 1
        else "Có phải bạn hỏi về thủ tục này không?"
    ]
    lines += [
        f"{i}. {trim(c['name'], 120)} (mã {c['code']})" for i, c in enumerate(candidates, start=1)
    ]
    lines.append("Bạn bấm nút hoặc gõ số thứ tự (ví dụ: 1).")
    buttons = [
        {"title": short_title(c["name"]), "payload": choose_payload(c["code"])} for c in candidates
    ]
    dispatcher.utter_message(text="\n".join(lines), buttons=buttons)
    return [SlotSet(CANDIDATES_SLOT, candidates), SlotSet(PENDING_FACTS_SLOT, facts)]


def _by_name(text: str, candidates: list[dict[str, str]]) -> str | None:
    """The one candidate whose name covers the typed words best (ties: closest length)."""
    words = set(procedure_words(text))
    if not words:
        return None
    ranked = []
    for candidate in candidates:
        name_words = set(tokens(candidate["name"]))
        coverage = len(words & name_words) / len(words)
        closeness = len(words & name_words) / len(words | name_words)
        ranked.append(((coverage, closeness), candidate["code"]))
    ranked.sort(reverse=True)
    best_key, best_code = ranked[0]
    if best_key[0] < 0.8 or (len(ranked) > 1 and ranked[1][0] == best_key):
        return None
    return best_code


def picked_code(tracker: Tracker) -> str | None:
    """The candidate the latest message picks: by number ("2", "số 2", "cái thứ hai") or name."""
    candidates = tracker.get_slot(CANDIDATES_SLOT) or []
    if not candidates:
        return None
    text = tracker.latest_message.get("text") or ""
    index = parse_choice(text, len(candidates))
    if index is not None:
        return candidates[index]["code"]
    return _by_name(text, candidates)
