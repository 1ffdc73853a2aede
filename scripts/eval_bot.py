"""The real questions and the conversations through a running bot (Rasa's REST channel).

- Real questions: each sent as a new conversation. Counted: the right procedure named in the
  first reply (an answer's "Mã TTHC", or a candidate offered), the first code named being right,
  and a direct answer about a wrong procedure (in scope or not).
- Conversations: turn by turn in one conversation. A turn is right when the reply answers an
  acceptable procedure; when the bot asks which one and offers an acceptable one, the citizen
  taps it (counted apart). Counted too: answers about the previous procedure after a new one
  was named, and of the turns answered right, the share whose reply states the asked fact.

    python scripts/eval_bot.py --base-url URL [--part dev|test] [--json OUT]
    python scripts/eval_bot.py --start-stack [--part dev|test] [--json OUT]

`--start-stack` starts the action server, Rasa (models/tthc.tar.gz) and the web server on free
ports over the configured procedures database, with a fresh tracker store.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from procedures_db.answers.text import FACT_LABELS  # noqa: E402
from procedures_db.asked import set_fact  # noqa: E402
from procedures_db.resolver.datasets import Conversation, conversations, real_questions  # noqa: E402
from procedures_db.settings import get_settings  # noqa: E402
from scripts import eval_e2e  # noqa: E402

_ANSWER_RE = re.compile(r"Mã TTHC: (\d{1,2}\.\d{6})")
_OFFER_RE = re.compile(r"\(mã (\d{1,2}\.\d{6})\)")
_PAYLOAD_RE = re.compile(r'"procedure_code":"(\d{1,2}\.\d{6})"')


@dataclass
class Reply:
    answered: list[str] = field(default_factory=list)  # codes answered ("Mã TTHC")
    offered: list[str] = field(default_factory=list)  # codes offered (list or buttons)
    payloads: dict[str, str] = field(default_factory=dict)
    latency_s: float = 0.0
    text: str = ""
    full_text: str = ""

    @property
    def named(self) -> list[str]:
        return list(dict.fromkeys(self.answered + self.offered))


def send(base_url: str, sender: str, text: str, timeout_s: float = 30.0) -> Reply:
    messages, latency = eval_e2e.ask(base_url, text, timeout_s, sender=sender)
    return reply_of(messages, latency)


def reply_of(messages: list[dict], latency_s: float = 0.0) -> Reply:
    """The codes a reply's messages answer and offer (text, buttons)."""
    reply = Reply(latency_s=latency_s)
    for message in messages:
        text_out = message.get("text") or ""
        reply.text += text_out[:160] + " / "
        reply.full_text += text_out + "\n"
        reply.answered += _ANSWER_RE.findall(text_out)
        reply.offered += _OFFER_RE.findall(text_out)
        for button in message.get("buttons") or []:
            for code in _PAYLOAD_RE.findall(button.get("payload") or ""):
                reply.offered.append(code)
                reply.payloads[code] = button["payload"]
    return reply


# Failing turns of the dev part, for whoever improves the bot (never the test part's).
FAILURES: list[dict] = []


def _failed(row: Conversation, turn, reply: Reply, what: str) -> None:
    FAILURES.append(
        {
            "id": row.id,
            "what": what,
            "text": turn.text[:300],
            "want": sorted(turn.codes),
            "answered": reply.answered[:2],
            "offered": reply.offered[:5],
            "reply": reply.text[:400],
        }
    )


def questions_report(base_url: str, rows: list[Conversation]) -> dict:
    named = first_right = wrong_direct = in_scope = 0
    for row in rows:
        turn = row.turns[0]
        reply = send(base_url, f"eval-{uuid.uuid4().hex}", turn.text)
        if not set(reply.named) & turn.codes:
            _failed(row, turn, reply, "not named" if turn.codes else "out of scope")
        if reply.answered and reply.answered[0] not in turn.codes:
            wrong_direct += 1
        if not turn.codes:
            continue
        in_scope += 1
        named += bool(set(reply.named) & turn.codes)
        first_right += bool(reply.named) and reply.named[0] in turn.codes
    n = max(in_scope, 1)
    return {
        "questions": len(rows),
        "in_scope": in_scope,
        "named_in_first_reply": round(named / n, 4),
        "first_code_right": round(first_right / n, 4),
        "wrong_direct_share_of_all": round(wrong_direct / max(len(rows), 1), 4),
    }


# How each fact's paragraph starts in an answer (procedures_db/answers/text.py); an overview
# states place, time, fee and online level, not documents, steps or requirements.
FACT_MARKS = {
    "overview": ("Mã TTHC",),  # any answer tells the procedure
    "place": ("Nơi nộp",),
    "time": ("Thời gian giải quyết",),
    "fee": ("Phí, lệ phí",),
    "documents": ("Thành phần hồ sơ",),
    "steps": ("Các bước thực hiện",),
    "requirements": ("Yêu cầu, điều kiện", "Điều kiện chung", "«"),
    "online": ("Mức độ trực tuyến",),
}


def fact_answered(text: str, fact: str) -> bool:
    """The reply states the fact, or says the record lacks it."""
    return any(mark in text for mark in FACT_MARKS[fact]) or (
        f"chưa có thông tin về {FACT_LABELS.get(fact)}" in text
    )


def conversations_report(base_url: str, rows: list[Conversation]) -> dict:
    turns = direct = after_pick = stale = out_of_scope = declined = 0
    facts: dict[str, list[int]] = {}  # per asked fact: [stated, turns answered right]
    for row in rows:
        sender = f"eval-{uuid.uuid4().hex}"
        previous: str | None = None
        for turn in row.turns:
            reply = send(base_url, sender, turn.text)
            answered = reply.answered[0] if reply.answered else None
            if not turn.codes:  # right when no procedure is answered outright
                out_of_scope += 1
                declined += answered is None
                if answered:
                    _failed(row, turn, reply, "out of scope")
                previous = answered or previous
                continue
            turns += 1
            if answered in turn.codes:
                direct += 1
                previous = answered
                if fact := set_fact(turn.fact):
                    counts = facts.setdefault(fact, [0, 0])
                    counts[0] += fact_answered(reply.full_text, fact)
                    counts[1] += 1
                continue
            is_stale = bool(turn.switch and previous and answered == previous)
            stale += is_stale
            _failed(row, turn, reply, "stale" if is_stale else "turn")
            offered = [c for c in reply.offered if c in turn.codes]
            if not answered and offered:  # the citizen taps the right one
                picked = send(base_url, sender, reply.payloads.get(offered[0], offered[0]))
                if picked.answered[:1] == [offered[0]]:
                    after_pick += 1
                    previous = offered[0]
                    continue
            previous = answered or previous
    n = max(turns, 1)
    return {
        "conversations": len(rows),
        "turns": turns,
        "turns_answered_right": round(direct / n, 4),
        "turns_right_with_a_pick": round((direct + after_pick) / n, 4),
        "answers_about_previous_after_switch": stale,
        "out_of_scope_turns": out_of_scope,
        "out_of_scope_not_answered": declined,
        "asked_fact_stated": _fact_shares(facts),
    }


def _fact_shares(facts: dict[str, list[int]]) -> dict:
    """Of the turns answered about the right procedure, the share whose reply states the asked
    fact (in all, and per fact)."""
    stated, of = sum(c[0] for c in facts.values()), sum(c[1] for c in facts.values())
    out = {"all": {"stated": stated, "of": of, "share": round(stated / max(of, 1), 4)}}
    for fact, (k, n) in sorted(facts.items()):
        out[fact] = {"stated": k, "of": n, "share": round(k / max(n, 1), 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=get_settings().rasa_url)
    parser.add_argument("--part", choices=("dev", "test"), default="dev")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--start-stack", action="store_true")
    parser.add_argument("--failures", type=Path, help="dev part only: write the failing turns")
    parser.add_argument("--ids", default="", help="only the rows whose id starts so (dev part)")
    args = parser.parse_args(argv)
    if args.ids and args.part == "test":
        parser.error("the test part is run whole")
    if args.failures and args.part == "test":
        parser.error("the test part reports figures only")
    if args.start_stack:
        return _with_stack(args)
    chosen = [
        [row for row in rows if row.id.startswith(args.ids)]
        for rows in (real_questions(args.part), conversations(args.part))
    ]
    report = {
        "part": args.part,
        "ids": args.ids or None,
        "real_questions": questions_report(args.base_url, chosen[0]),
        "conversations": conversations_report(args.base_url, chosen[1]),
    }
    text = json.dumps(report, ensure_ascii=False, indent=1)
    print(text)
    if args.failures:
        args.failures.write_text(json.dumps(FAILURES, ensure_ascii=False, indent=1), "utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    return 0


def _with_stack(args: argparse.Namespace) -> int:
    import tempfile

    from scripts.stack import throwaway_stack

    with throwaway_stack(Path(tempfile.mkdtemp(prefix="eval-bot-"))) as stack:
        rest = ["--base-url", stack.rasa_url, "--part", args.part, "--ids", args.ids]
        rest += ["--json", str(args.json)] if args.json else []
        return main(rest + (["--failures", str(args.failures)] if args.failures else []))


if __name__ == "__main__":
    sys.exit(main())
