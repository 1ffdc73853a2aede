"""Several procedures match: the asked fact across them, buttons to choose; read the pick."""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import lookup
from actions.formatting import trim
from actions.questions import name_word_set, name_words, parse_choice
from procedures_db.answers import FACT_LABELS, key_facts
from procedures_db.facts import UNKNOWN
from procedures_db.profile import ProvinceProfile
from procedures_db.queries import ProcedureDetails
from procedures_db.resolver import MAX_LISTED
from procedures_db.search import short_titles

# Facts short enough to compare across candidates (procedures_db.answers.key_facts).
COMPARABLE = ("time", "fee", "place", "online")
CANDIDATES_SLOT = "procedure_candidates"
PENDING_FACTS_SLOT = "pending_facts"


def choose_payload(code: str) -> str:
    return "/choose_procedure" + json.dumps({"procedure_code": code}, separators=(",", ":"))


async def _details(candidates: list[dict[str, str]]) -> list[ProcedureDetails] | None:
    try:
        found = [await lookup.get_procedure(c["code"]) for c in candidates]
    except lookup.LookupFailed:
        return None  # the plain list still lets the citizen choose
    return None if None in found else found


async def offer(
    dispatcher: CollectingDispatcher, hits: list[Any], facts: list[str]
) -> list[dict[str, Any]]:
    """Up to three candidates (the resolver chose them) as buttons (channels without buttons
    number them), with the asked fact first: said once when they agree, one short line each
    when they differ."""
    candidates = [{"code": hit.code, "name": hit.name} for hit in hits[:MAX_LISTED]]
    fact = facts[0] if facts and facts[0] in COMPARABLE else None
    details = await _details(candidates) if fact else None
    if details:
        profile = await lookup.get_profile_or_default()
        text = compare_text(details, fact, profile)
    else:
        text = list_text(candidates)
    buttons = [
        {"title": title, "payload": choose_payload(c["code"])}
        for c, title in zip(candidates, short_titles([c["name"] for c in candidates]), strict=True)
    ]
    dispatcher.utter_message(text=text, buttons=buttons)
    return [SlotSet(CANDIDATES_SLOT, candidates), SlotSet(PENDING_FACTS_SLOT, facts)]


def list_text(candidates: list[dict[str, str]]) -> str:
    if len(candidates) == 1:
        only = candidates[0]
        return f"Có phải bạn hỏi về thủ tục {trim(only['name'], 120)} (mã {only['code']})?"
    lines = ["Có một số thủ tục gần với câu hỏi của bạn. Bạn hỏi về thủ tục nào?"]
    lines += [f"- {trim(c['name'], 90)} (mã {c['code']})" for c in candidates]
    return "\n".join(lines)


def compare_text(details: list[ProcedureDetails], fact: str, profile: ProvinceProfile) -> str:
    values = [key_facts(d, profile)[fact] for d in details]
    label = FACT_LABELS[fact].capitalize()
    if len(details) == 1:  # one weak candidate: ask, with the answer it would give
        only = details[0]
        return (
            f"Có phải bạn hỏi về thủ tục {trim(only.name, 120)} (mã {only.code})?\n"
            f"{label}: {values[0]}"
        )
    if len(set(values)) == 1 and values[0] != UNKNOWN:
        # The buttons under the text name them again: short lines keep it on one screen.
        lines = [f"{label}: {trim(values[0], 90)} — như nhau cho cả {len(details)} thủ tục:"]
        lines += [f"- {trim(d.name, 60)} (mã {d.code})" for d in details]
        lines.append("Bạn chọn một thủ tục để xem thêm.")
    else:
        lines = [f"{label} của các thủ tục gần với câu hỏi của bạn:"]
        lines += [
            f"- {trim(d.name, 45)} (mã {d.code}): {trim(v, 55)}"
            for d, v in zip(details, values, strict=True)
        ]
        lines.append("Bạn chọn thủ tục của mình để xem chi tiết.")
    return "\n".join(lines)


def _by_name(text: str, candidates: list[dict[str, str]]) -> str | None:
    """The one candidate whose name covers the typed words best: words the other names lack,
    or (words every name holds) its whole name; None when the typing picks none."""
    words, accented = name_words(text)
    if not words:
        return None
    ranked = []
    for candidate in candidates:
        named = name_word_set(candidate["name"], accented)
        coverage = len(words & named) / len(words)
        closeness = len(words & named) / len(words | named)
        ranked.append(((coverage, closeness), candidate["code"]))
    ranked.sort(reverse=True)
    (coverage, closeness), best_code = ranked[0]
    if coverage < 0.8 or (len(ranked) > 1 and ranked[1][0] == (coverage, closeness)):
        return None
    # Words every offered name holds ("cấp lại" among re-issues) pick one only when they are
    # its whole name ("đăng ký thường trú" beside "xóa đăng ký thường trú").
    if len(ranked) > 1 and ranked[1][0][0] == coverage and closeness < 1.0:
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
