"""The sentences: one paragraph per fact asked, the read-aloud script, the CLI's full text.

Facts are named by their string values ("time", "fee", …), the same as `actions.questions.Fact`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from procedures_db.answers.documents import DocumentPlan, Paper, plan_documents
from procedures_db.answers.eligibility import asks_yes_no, eligibility_text, relevant_lines
from procedures_db.answers.place import place_answer
from procedures_db.answers.values import (
    ONLINE_PLAIN,
    fee_detail,
    fee_summary,
    online_available,
    online_level,
    online_summary,
    portal_url,
    time_summary,
)
from procedures_db.facts import (
    LEVEL_LABELS,
    UNKNOWN,
    attr,
    clean,
    method_fee,
    method_label,
    trim,
)
from procedures_db.facts import method_time as _method_time
from procedures_db.profile import ProvinceProfile, contact_hint

FACT_LABELS = {
    "place": "nơi nộp hồ sơ",
    "time": "thời gian giải quyết",
    "fee": "phí, lệ phí",
    "documents": "thành phần hồ sơ",
    "steps": "trình tự thực hiện",
    "requirements": "yêu cầu, điều kiện",
    "online": "mức độ dịch vụ công trực tuyến",
}
LEVEL_SCALE_NOTE = "(Theo cách gọi cũ: mức độ 4 ≈ toàn trình, mức độ 3 ≈ một phần.)"
NAME_LIMIT = 70
KEY_FACTS = ("place", "time", "fee", "online")  # what the overview states
FIRST_ITEMS = 5  # item lines of the first documents reply: with the header, one phone screen
ITEM_LIMIT = 50
MAX_STEPS = 3
STEP_LIMIT = 130
NOTE_LIMIT = 300
MORE_DOCUMENTS = "Xem đầy đủ hồ sơ"


@dataclass(frozen=True)
class Reply:
    text: str
    more: str | None = None  # the fact with more to show on request (a "Xem thêm" button)
    # A second message after `text`: what the record does hold when it lacks every fact asked
    # (one message would not fit a phone screen).
    then: str | None = None


def not_available(fact: str, profile: ProvinceProfile) -> str:
    return f"Cơ sở dữ liệu chưa có thông tin về {FACT_LABELS[fact]}. {contact_hint(profile)}"


def header(details: Any) -> str:
    return f"Thủ tục: {trim(clean(details.name) or '', NAME_LIMIT)} (Mã TTHC: {details.code})"


def key_facts(details: Any, profile: ProvinceProfile, on: date | None = None) -> dict[str, str]:
    """The four facts every surface states the same way (the agreement test compares them)."""
    return {
        "time": time_summary(details) or UNKNOWN,
        "fee": fee_summary(details, on) or UNKNOWN,
        "place": place_answer(details, profile).short,
        "online": online_summary(details),
    }


# --- one paragraph per fact ---------------------------------------------------------------------


def time_text(details: Any, profile: ProvinceProfile, **_: Any) -> str:
    value = time_summary(details)
    return f"Thời gian giải quyết: {value}" if value else not_available("time", profile)


def fee_text(details: Any, profile: ProvinceProfile, *, on: date | None = None, **_: Any) -> str:
    summary, detail = fee_summary(details, on), fee_detail(details, on)
    if not summary:
        return not_available("fee", profile)
    if detail and detail.startswith(summary.rstrip("…")):
        return f"Phí, lệ phí: {detail}"  # the summary was the note, shortened
    lines = [f"Phí, lệ phí: {summary}"]
    if detail and detail != summary:
        lines.append(f"Chi tiết: {detail}")  # trimmed by method_fee, expiry marks kept
    return "\n".join(lines)


def place_text(details: Any, profile: ProvinceProfile, **_: Any) -> str:
    place = place_answer(details, profile)
    lines = [f"Nơi nộp hồ sơ: {place.short}"]
    if not place.known:
        lines[0] += f". {contact_hint(profile)}"
    lines += [f"- {label}: {value}" for label, value in place.rows if value not in place.short]
    return "\n".join(lines)


def online_text(
    details: Any, profile: ProvinceProfile, *, level_scale: bool = False, **_: Any
) -> str:
    level = online_level(details)
    lines = [f"Mức độ trực tuyến: {online_summary(details)} — {ONLINE_PLAIN[level]}"]
    if level_scale:
        lines.append(LEVEL_SCALE_NOTE)
    if online_available(details):
        lines.append(f"Nộp trực tuyến tại: {portal_url(details, profile)}")
    return "\n".join(lines)


def _paper_line(index: int, paper: Paper, limit: int) -> str:
    amount = f" ({paper.quantity})" if paper.quantity else ""
    return f"{index}. {trim(paper.name, limit)}{amount}"


def _rest(plan: DocumentPlan, shown: int) -> str:
    parts = []
    left = len(plan.papers or plan.special) - shown
    if left > 0:
        parts.append(f"{left} giấy tờ khác")
    if plan.special and plan.papers:
        parts.append(f"{len(plan.special)} giấy tờ cho trường hợp riêng")
    if plan.notes:
        parts.append(f"{len(plan.notes)} lưu ý")
    return ", ".join(parts)


def documents_first(plan: DocumentPlan) -> tuple[list[str], bool]:
    """Papers first, at most FIRST_ITEMS short lines; the rest counted (lines, more to show)."""
    cases = list(plan.cases)
    # Without common papers, the special-case papers are what there is to bring.
    papers = (plan.papers or plan.special)[: FIRST_ITEMS - (3 if cases else 0)]
    lines = [_paper_line(i, p, ITEM_LIMIT) for i, p in enumerate(papers, start=1)]
    if cases:
        room = FIRST_ITEMS - len(papers) - 1
        lines.append(f"Tùy trường hợp ({len(cases)}):")
        lines += [f"- {trim(case, ITEM_LIMIT - 10)}" for case in cases[:room]]
        if len(cases) > room:
            lines[-1] = f"- … và {len(cases) - room + 1} trường hợp khác"
    rest = _rest(plan, len(papers))
    if rest:
        lines.append(f"Xem thêm: {rest}.")  # behind the «Xem đầy đủ hồ sơ» button
    more = bool(rest) or any(len(p.name) > ITEM_LIMIT for p in papers) or bool(plan.cases)
    return lines, more


def documents_full(plan: DocumentPlan) -> list[str]:
    lines: list[str] = []
    sections = [
        ("Giấy tờ phải nộp", [*plan.forms, *plan.submit]),
        ("Giấy tờ xuất trình", plan.show),
    ]
    sections += [("Trường hợp riêng", plan.special)]
    sections += [(f"Trường hợp {case}", papers) for case, papers in plan.cases.items()]
    for title, papers in sections:
        if papers:
            lines.append(f"{title}:")
            lines += [_paper_line(i, p, 300) for i, p in enumerate(papers, start=1)]
    if plan.notes:
        lines.append("Xem thêm — lưu ý:")
        lines += [f"- {trim(note, 300)}" for note in plan.notes]
    return lines


def documents_reply(details: Any, profile: ProvinceProfile, *, full: bool = False) -> Reply:
    plan = plan_documents(list(details.documents))
    if not plan:
        return Reply(not_available("documents", profile))
    if full:
        return Reply("Thành phần hồ sơ (đầy đủ):\n" + "\n".join(documents_full(plan)))
    lines, more = documents_first(plan)
    return Reply("Thành phần hồ sơ:\n" + "\n".join(lines), "documents" if more else None)


_STEP_SPLIT = re.compile(r"\n+|(?=Bước \d+\s*[:.])")


def steps_text(details: Any, profile: ProvinceProfile, **_: Any) -> str:
    steps = [clean(part.strip().lstrip("-+*• ")) for part in _STEP_SPLIT.split(details.steps or "")]
    steps = [step for step in steps if step]
    if not steps:
        return not_available("steps", profile)
    lines = [f"- {trim(step, STEP_LIMIT)}" for step in steps[:MAX_STEPS]]
    if len(steps) > MAX_STEPS:
        lines.append("… (các bước tiếp theo xem ở nguồn)")
    return "Các bước thực hiện:\n" + "\n".join(lines)


def requirements_text(details: Any, profile: ProvinceProfile, *, question: str = "", **_: Any):
    quoted = eligibility_text(details, question) if question else None
    if quoted:
        return quoted
    requirements = clean(details.requirements)
    if not requirements:
        return not_available("requirements", profile)
    return f"Yêu cầu, điều kiện: {trim(requirements, NOTE_LIMIT)}"


def overview_text(
    details: Any, profile: ProvinceProfile, *, on=None, question: str = "", **_: Any
) -> str:
    """The key facts; a yes/no question ("có được … không?") first gets the record's lines
    that speak to it, when there are any."""
    facts = key_facts(details, profile, on)
    lines = []
    if question and asks_yes_no(question) and relevant_lines(details, question):
        lines.append(eligibility_text(details, question))
    if clean(details.field):
        lines.append(f"Lĩnh vực: {clean(details.field)}")
    lines += [
        f"Nơi nộp: {facts['place']}",
        f"Thời gian giải quyết: {facts['time']}",
        f"Phí, lệ phí: {facts['fee']}",
        f"Mức độ trực tuyến: {facts['online']}",
    ]
    return "\n".join(lines)


_BUILDERS = {
    "overview": overview_text,
    "place": place_text,
    "time": time_text,
    "fee": fee_text,
    "steps": steps_text,
    "requirements": requirements_text,
    "online": online_text,
}


def answer_facts(
    details: Any, facts: list[str], profile: ProvinceProfile, **options: Any
) -> list[Reply]:
    """One Reply per fact asked (options: question, level_scale, on, full_documents)."""
    full = options.pop("full_documents", False)
    replies = []
    for fact in facts:
        if fact == "documents":
            replies.append(documents_reply(details, profile, full=full))
        else:
            replies.append(Reply(_BUILDERS[fact](details, profile, **options)))
    return replies


def procedure_reply(
    details: Any, facts: list[str], profile: ProvinceProfile, **options: Any
) -> Reply:
    """Name and code, one paragraph per asked fact, then the source link: one message (Rasa's
    REST channel splits a text at blank lines into separate messages)."""
    replies = answer_facts(details, facts, profile, **options)
    parts = [header(details), *(reply.text for reply in replies)]
    if clean(details.source_url):
        parts.append(f"Nguồn: {clean(details.source_url)}")
    more = next((reply.more for reply in replies if reply.more), None)
    return Reply("\n".join(parts), more, held_instead(details, facts, replies, profile))


def held_instead(
    details: Any, facts: list[str], replies: list[Reply], profile: ProvinceProfile
) -> str | None:
    """When the record holds none of the conditions, documents or steps asked ("rút BHXH một lần
    thì thủ tục thế nào" read as asking the conditions): its key facts, so that "no information"
    is not all the citizen gets."""
    # The overview (or a key fact) asked states the key facts already.
    if not facts or any(f not in FACT_LABELS or f in KEY_FACTS for f in facts):
        return None
    if any(r.text != not_available(f, profile) for f, r in zip(facts, replies, strict=True)):
        return None
    overview = answer_facts(details, ["overview"], profile)[0].text
    return f"Thông tin chính của thủ tục {details.code}:\n{overview}"


# --- staff read-aloud script and the CLI's full text ----------------------------------------------


def summary_script(details: Any, profile: ProvinceProfile, on: date | None = None) -> str:
    """A short script the hotline staff reads to the caller."""
    facts = key_facts(details, profile, on)
    levels = ", ".join(LEVEL_LABELS.get(level, level).lower() for level in details.levels)
    if online_available(details):
        online = f"{facts['online']}, tại {portal_url(details, profile)}."
    else:
        online = f"{facts['online']} (chỉ nộp trực tiếp hoặc qua bưu chính)."
    return "\n".join(
        [
            f"Thủ tục: {details.name} (mã {details.code}{', ' + levels if levels else ''}).",
            f"Nơi nộp: {facts['place']}.",
            f"Thời gian giải quyết: {facts['time']}.",
            f"Phí, lệ phí: {facts['fee']}.",
            f"Mức độ trực tuyến: {online}",
        ]
    )


def method_summary(method: Any, context: str | None = None, on=None) -> dict[str, str]:
    """Per-method wording for result lists: label, time, short fee (a method or a mapping)."""
    return {
        "method": method_value(method),
        "method_label": method_label(method),
        "time": _method_time(method, context) or UNKNOWN,
        "fee": method_fee(method, short=True, on=on) or UNKNOWN,
    }


def method_value(method: Any) -> str:
    return attr(method, "method") or ""


def method_rows(details: Any, on: date | None = None) -> list[dict[str, str]]:
    """Per-method wording for tables: the summary plus the full fee note and description."""
    return [
        {
            **method_summary(m, details.steps, on),
            "fee_note": method_fee(m, on=on) or UNKNOWN,
            "description": clean(m.description) or UNKNOWN,
        }
        for m in details.methods
    ]


def _section(title: str, body: str | None) -> list[str]:
    return [f"{title}:", f"  {body.strip()}"] if body and body.strip() else []


def procedure_text(details: Any, profile: ProvinceProfile, on: date | None = None) -> str:
    """Everything about one procedure as plain text (the CLI's `show` without --json)."""
    levels = ", ".join(LEVEL_LABELS.get(level, level) for level in details.levels) or "-"
    lines = [
        f"{details.code} — {details.name}",
        f"Lĩnh vực: {details.field or '-'}",
        f"Cấp thực hiện: {levels}",
        f"Mức độ trực tuyến: {online_summary(details)} (nguồn: {details.online_level_source})",
        summary_script(details, profile, on),
        place_text(details, profile),
        "Cách thức thực hiện:",
    ]
    for row in method_rows(details, on):
        lines.append(f"  - {row['method_label']}: thời hạn {row['time']}; phí: {row['fee_note']}")
    if not details.methods:
        lines.append(f"  {UNKNOWN}")
    plan = plan_documents(list(details.documents))
    lines.append("Thành phần hồ sơ:")
    lines += [f"  {line}" for line in documents_full(plan)] or [f"  {UNKNOWN}"]
    lines += _section("Trình tự thực hiện", details.steps)
    lines += _section("Yêu cầu, điều kiện", details.requirements)
    lines += _section("Kết quả", details.result)
    if details.legal_bases:
        lines.append("Căn cứ pháp lý:")
        lines += [
            f"  - {b.title}" + (f" ({b.number})" if b.number else "") for b in details.legal_bases
        ]
    lines.append(f"Nguồn: {details.source_url or details.source_file or details.source_format}")
    return "\n".join(lines)
