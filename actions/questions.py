"""What the citizen asks: the facts wanted, a choice among candidates, the procedure words.

Everything here works on accent-folded tokens of the normalized message, so "o dau", "ở đâu"
and "ở đâu?" are the same cue.
"""

from __future__ import annotations

import enum
import re

from procedures_db.text import canonical, fold_accents, normalize_message, tokens


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

# Words and phrases that only shape a question; what is left names (or fails to name) a
# procedure. Written with accents; an unaccented message is compared accent-folded, except for
# the words whose folded form is also a content word ("can" may be "căn", "co" may be "cơ").
QUESTION_PHRASES = (
    "thủ tục hành chính",
    "thủ tục",
    "cho em hỏi",
    "cho mình hỏi",
    "cho tôi hỏi",
    "xin hỏi",
    "hỏi",
    "cho",
    "em",
    "anh",
    "chị",
    "mình",
    "tôi",
    "bạn",
    "ad",
    "admin",
    "ơi",
    "ạ",
    "à",
    "nhé",
    "nha",
    "nhỉ",
    "vậy",
    "thế",
    "thì sao",
    "ra sao",
    "thế nào",
    "như thế nào",
    "làm sao",
    "làm thế nào",
    "mất bao lâu",
    "bao lâu",
    "mất mấy ngày",
    "mấy ngày",
    "bao nhiêu ngày",
    "thời gian",
    "giải quyết",
    "mất bao nhiêu tiền",
    "hết bao nhiêu tiền",
    "tốn bao nhiêu tiền",
    "bao nhiêu tiền",
    "mất bao nhiêu",
    "hết bao nhiêu",
    "bao nhiêu",
    "mất phí",
    "mất tiền",
    "lệ phí",
    "chi phí",
    "phí",
    "ở đâu",
    "chỗ nào",
    "nơi nào",
    "cơ quan nào",
    "nộp hồ sơ",
    "nộp",
    "hồ sơ",
    "giấy tờ",
    "gồm",
    "những gì",
    "cần gì",
    "cần những gì",
    "mang theo",
    "chuẩn bị",
    "các bước",
    "quy trình",
    "trình tự",
    "điều kiện",
    "yêu cầu",
    "online",
    "trực tuyến",
    "qua mạng",
    "mức độ",
    "mấy",
    "được không",
    "được",
    "không",
    "gì",
    "nào",
    "còn",
    "nữa",
    "muốn",
    "xin",
    "với",
    "thông tin",
    "hướng dẫn",
    "giúp",
    "luôn",
    "khi nào",
    "bao giờ",
)
# Question words whose accent-folded form is also a content word: dropped only when accented.
ACCENTED_ONLY = frozenset(("cần", "có", "thì", "để", "đi", "làm", "là", "và", "của", "việc"))

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


def asks_same_again(text: str) -> bool:
    """ "còn X thì sao?", "thế còn X?": the previous question, about something else."""
    words = folded_words(text)
    return (
        words[:1] == ["con"]
        or words[:2] in (["the", "con"], ["vay", "con"])
        or (words[-2:] == ["thi", "sao"])
    )


def mentions_level_number(text: str) -> bool:
    """The citizen speaks of "mức độ 3/4" (the old online-service scale)."""
    return _contains(folded_words(text), "muc do")


_WORD_RE = re.compile(r"[^\W_]+(?:\.\d+)*", re.UNICODE)


def _phrase_table(accented: bool) -> dict[tuple[str, ...], int]:
    phrases = [*QUESTION_PHRASES, *ACCENTED_ONLY] if accented else QUESTION_PHRASES
    table = {}
    for phrase in phrases:
        words = canonical(phrase).split() if accented else tokens(phrase)
        table[tuple(words)] = len(words)
    return table


_PHRASES = {accented: _phrase_table(accented) for accented in (True, False)}
_LONGEST = max(len(key) for key in _PHRASES[True])


def procedure_phrase(text: str) -> str:
    """The message without question and filler words, accents kept: "đăng ký thường trú"."""
    words = _WORD_RE.findall(normalize_message(text))
    accented = any(fold_accents(word) != word for word in words)
    keys = words if accented else [fold_accents(word) for word in words]
    table, kept, index = _PHRASES[accented], [], 0
    while index < len(words):
        for size in range(min(_LONGEST, len(words) - index), 0, -1):
            if tuple(keys[index : index + size]) in table:
                index += size
                break
        else:
            kept.append(words[index])
            index += 1
    return " ".join(kept)


def procedure_words(text: str) -> list[str]:
    """Tokens that may name a procedure: the message without question and filler words."""
    return [w for w in tokens(procedure_phrase(text)) if not w.isdigit()]


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
