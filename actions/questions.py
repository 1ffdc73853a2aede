"""What the citizen asks: the facts wanted, a choice among candidates, the procedure words.

Everything here works on accent-folded tokens of the normalized message, so "o dau", "ở đâu"
and "ở đâu?" are the same cue.
"""

from __future__ import annotations

import enum
import re

from procedures_db.text import normalize_message, tokens


class Fact(str, enum.Enum):
    OVERVIEW = "overview"
    PLACE = "place"
    TIME = "time"
    FEE = "fee"
    DOCUMENTS = "documents"
    STEPS = "steps"
    REQUIREMENTS = "requirements"
    ONLINE = "online"


INTENT_FACTS: dict[str, Fact] = {
    "ask_procedure_info": Fact.OVERVIEW,
    "ask_submission_place": Fact.PLACE,
    "ask_processing_time": Fact.TIME,
    "ask_fee": Fact.FEE,
    "ask_documents": Fact.DOCUMENTS,
    "ask_steps": Fact.STEPS,
    "ask_requirements": Fact.REQUIREMENTS,
    "ask_online_level": Fact.ONLINE,
}


def _words(text: str) -> list[str]:
    return text.split()


# Accent-folded cue phrases that reveal a further question in the same message.
FACT_CUES: dict[Fact, tuple[str, ...]] = {
    Fact.PLACE: ("o dau", "noi nop", "nop tai", "co quan nao", "cho nao", "lam tai", "dia chi"),
    Fact.TIME: ("bao lau", "may ngay", "bao nhieu ngay", "thoi gian", "thoi han", "lau khong"),
    Fact.FEE: (
        "bao nhieu tien",
        "le phi",
        "phi",
        "chi phi",
        "ton bao nhieu",
        "het bao nhieu",
        "mat bao nhieu tien",
        "bao nhieu phi",
    ),
    Fact.DOCUMENTS: (
        "giay to",
        "ho so gom",
        "ho so can",
        "ho so gi",
        "thanh phan ho so",
        "can mang",
        "can chuan bi",
        "ho so nhu the nao",
    ),
    Fact.STEPS: (
        "cac buoc",
        "quy trinh",
        "trinh tu",
        "lam the nao",
        "lam nhu the nao",
        "thu tuc ra sao",
        "lam sao",
    ),
    Fact.REQUIREMENTS: ("dieu kien", "yeu cau"),
    Fact.ONLINE: (
        "online",
        "truc tuyen",
        "qua mang",
        "tren mang",
        "dich vu cong",
        "muc do",
        "toan trinh",
    ),
}
# "nộp online mất bao lâu" asks the time of the online method, not the online level: an
# online word asks for the level only in a yes/no question or with the level's own words.
_ONLINE_LEVEL_WORDS = ("muc do", "toan trinh", "mot phan", "khong")

# Words that only shape a question; what is left names (or fails to name) a procedure.
QUESTION_WORDS = frozenset(
    _words(
        """
        a ah ak ad admin ai anh ba ban bao bay buoc cac can cach cai cam chi cho chua co con cua
        day de den di dieu dinh do duoc em gi gioi giay gom hay het hoi hon khong kien la lam
        lau le luc ma mang may minh mot muc muon nao nay ne neu nhe nhieu nhung noi nop nua o oi
        online phai phi quy ra roi sao so ta tai tat the thi thoi tien to toi ton trinh tren truc
        tuc tuyen thu uh va vay ve voi vui xin yeu gian han ngay chuan bi nhu tu dau ho thong tin
        biet giup hien phep cung
        """
    )
)

CODE_RE = re.compile(r"\b\d{1,2}\.\d{6}\b")

_ORDINALS = {
    "1": 1,
    "2": 2,
    "3": 3,
    "4": 4,
    "5": 5,
    "mot": 1,
    "nhat": 1,
    "hai": 2,
    "ba": 3,
    "bon": 4,
    "tu": 4,
    "nam": 5,
}
_CHOICE_FILLERS = frozenset(
    _words(
        "toi minh em chon lay cai thu tuc so muc phuong an nhe a ah la di the nay hoi ve y dong o"
        " vay cho xem"
    )
)


def folded_words(text: str) -> list[str]:
    """Accent-folded tokens of the normalized message (chat abbreviations expanded)."""
    return tokens(normalize_message(text))


def _position(words: list[str], phrase: str) -> int:
    """Where the phrase starts in the message, -1 when absent (whole words only)."""
    return f" {' '.join(words)} ".find(f" {phrase} ")


def _contains(words: list[str], phrase: str) -> bool:
    return _position(words, phrase) >= 0


def _first_cue(words: list[str], cues: tuple[str, ...]) -> int:
    found = [p for p in (_position(words, cue) for cue in cues) if p >= 0]
    return min(found) if found else -1


def facts_asked(intent: str | None, text: str) -> list[Fact]:
    """The intent's fact first, then every other fact cue words ask for, in message order."""
    words = folded_words(text)
    positions = {fact: _first_cue(words, cues) for fact, cues in FACT_CUES.items()}
    found = sorted((f for f, p in positions.items() if p >= 0), key=positions.__getitem__)
    if Fact.ONLINE in found and not any(_contains(words, w) for w in _ONLINE_LEVEL_WORDS):
        found.remove(Fact.ONLINE)
    primary = INTENT_FACTS.get(intent or "")
    facts = [primary] if primary and primary is not Fact.OVERVIEW else []
    facts += [fact for fact in found if fact not in facts]
    return facts or [Fact.OVERVIEW]


def mentions_level_number(text: str) -> bool:
    """The citizen speaks of "mức độ 3/4" (the old online-service scale)."""
    return _contains(folded_words(text), "muc do")


def procedure_words(text: str) -> list[str]:
    """Tokens that may name a procedure: the message without question and filler words."""
    return [w for w in folded_words(text) if w not in QUESTION_WORDS and not w.isdigit()]


def codes_in(text: str) -> list[str]:
    return CODE_RE.findall(text or "")


def parse_choice(text: str, count: int) -> int | None:
    """0-based index of a typed choice ("2", "số 2", "cái thứ hai", "đầu tiên"), else None."""
    words = [w for w in tokens(text) if w not in _CHOICE_FILLERS]
    phrase = " ".join(words)
    if phrase in ("dau tien", "dau"):
        index = 1
    elif phrase in ("cuoi cung", "cuoi"):
        index = count
    elif len(words) == 1 and words[0] in _ORDINALS:
        index = _ORDINALS[words[0]]
    else:
        return None
    return index - 1 if 1 <= index <= count else None
