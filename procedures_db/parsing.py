"""Parsers for the scraped portal's table cells, whose cells were concatenated without separators.

Every parser takes the raw cell string and returns plain values; a cell that cannot be read
raises `CellError` (the importer turns it into a reject naming the field). "Không có thông tin"
(the portal's "no value") always becomes None, never 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from procedures_db.models import Level, Method, OnlineLevel, TimeUnit
from procedures_db.text import fold_accents

NO_INFO = "Không có thông tin"
# Vietnamese letters (a regex range like à-ỹ would also take capitals such as Đ and Ạ).
_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệfghiìíỉĩịjklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvwxyỳýỷỹỵz"
)
LOWER = f"[{_LETTERS}]"
UPPER = f"[{_LETTERS.upper()}]"


class CellError(ValueError):
    """A cell whose structure cannot be read (the message says why)."""


def _clean(text: str | None) -> str | None:
    """Strip; empty and "Không có thông tin" mean no value."""
    if text is None:
        return None
    text = text.strip()
    return None if not text or text == NO_INFO else text


# --- money -------------------------------------------------------------------------------------

_NUMBER = r"\d+(?:[.,]\d{3})+|\d+"
_CURRENCY_VND = rf"(?:việt nam đồng|vnđ|vnd|đồng|đ(?!{LOWER}))"
_SCALE = {"triệu": 1_000_000, "nghìn": 1_000, "ngàn": 1_000}
_AMOUNT_RE = re.compile(
    rf"(?<![\d.,/])({_NUMBER})\s*(triệu|nghìn|ngàn)?\s*{_CURRENCY_VND}", re.IGNORECASE
)
_GROUPED = r"\d{1,3}(?:\.\d{3})+"
# Amounts written without a currency: a price per unit ("8.000.000/lần") or a rate after
# "phí ...:" ("Mức phí giảm 20%: 1.600.000").
_BARE_AMOUNT_RES = (
    re.compile(rf"(?<![\d.,/])({_GROUPED})(?=\s*/\s*[^\W\d_])"),
    re.compile(
        rf"(?:phí|thu|giá)[^.;\d]{{0,30}}?(?:\d+%)?:\s*({_GROUPED})(?![\d/])", re.IGNORECASE
    ),
)
_FOREIGN_RE = re.compile(rf"(?<![\d.,/])(?:{_NUMBER})\s*(?:usd|eur|đô la)", re.IGNORECASE)


def _to_int(number: str) -> int:
    return int(re.sub(r"[.,]", "", number))


def parse_amounts(text: str | None) -> list[int]:
    """Every VND amount stated in the text (> 0), in order, without repeats.

    "135.000 đồng/lần", "1,200,000 Việt Nam Đồng", "20.000Đ/tờ khai", "5 triệu đồng".
    """
    found: list[tuple[int, int]] = []  # (position, amount) so that order follows the text
    for match in _AMOUNT_RE.finditer(text or ""):
        scale = _SCALE.get((match.group(2) or "").lower(), 1)
        found.append((match.start(), _to_int(match.group(1)) * scale))
    for pattern in _BARE_AMOUNT_RES:
        found += [(m.start(1), _to_int(m.group(1))) for m in pattern.finditer(text or "")]
    amounts: list[int] = []
    for _, value in sorted(found):
        if value > 0 and value not in amounts:
            amounts.append(value)
    return amounts


def fee_amounts(cell: str | None, description: str | None) -> list[int]:
    """Amounts from the fee cell, then its description, in order and without repeats.

    Some portal cells are in thousands of đồng ("135 VNĐ" beside "135.000 đồng/lần" in the
    description): a cell amount under 1,000 whose thousandfold the description states is that
    amount, not a separate one.
    """
    stated = parse_amounts(description)
    amounts = [a * 1000 if a < 1000 and a * 1000 in stated else a for a in parse_amounts(cell)]
    return [*dict.fromkeys([*amounts, *stated])]


def has_foreign_amount(text: str | None) -> bool:
    return bool(_FOREIGN_RE.search(text or ""))


# --- processing time ---------------------------------------------------------------------------

_UNITS = {
    "ngày làm việc": TimeUnit.WORKING_DAY,
    "ngày": TimeUnit.DAY,
    "giờ": TimeUnit.HOUR,
    "tháng": TimeUnit.MONTH,
}
_TIME_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(ngày làm việc|ngày|giờ|tháng)?", re.IGNORECASE)


@dataclass(frozen=True)
class ProcessingTime:
    value: float | None
    unit: TimeUnit | None
    text: str | None


def parse_time(text: str | None) -> ProcessingTime:
    """ "5 Ngày làm việc" -> (5, working_day); "1" -> (1, None); "Không có thông tin" -> None.

    A time of 0 carries no information (the portal's placeholder), so it is None too.
    """
    clean = _clean(text)
    match = _TIME_RE.fullmatch(clean) if clean else None
    if not match or float(match.group(1).replace(",", ".")) == 0:
        return ProcessingTime(None, None, clean)
    unit = _UNITS[match.group(2).lower()] if match.group(2) else None
    return ProcessingTime(float(match.group(1).replace(",", ".")), unit, clean)


# --- submission methods (cach_thuc_thuc_hien) --------------------------------------------------

METHODS_HEADER = "Hình thức nộpThời gianPhí, lệ phíMô tả"
METHOD_LABELS = {
    "Trực tuyến": Method.ONLINE,
    "Trực tiếp": Method.IN_PERSON,
    "Dịch vụ bưu chính": Method.POSTAL,
}
_LABEL_RE = re.compile("|".join(METHOD_LABELS))
_MONEY = rf"(?:{_NUMBER}) ?(?:VNĐ|Việt Nam Đồng|USD|Đồng)"
_FEE_VALUE = rf"Miễn phí|{NO_INFO}|(?:Lệ phí|Phí) ?: ?{_MONEY}|{_MONEY}"
_TIMED_UNIT = r"\d+(?:[.,]\d+)? ?(?:Ngày làm việc|Ngày|Giờ|Tháng)"
# A row head: processing time, then the fee value. Bare numbers glued to a fee number
# ("1100 VNĐ" = time 1, fee 100 VNĐ) are split after the first digit: every such row in the
# data has a one-digit time and the fee in its description confirms the remainder.
_HEAD_RES = (
    re.compile(rf"(?P<time>{_TIMED_UNIT}|{NO_INFO})(?P<fee>{_FEE_VALUE})"),
    re.compile(rf"(?P<time>\d+)(?P<fee>Miễn phí|{NO_INFO})"),
    re.compile(rf"(?P<time>\d)(?P<fee>(?:{_NUMBER}) ?(?:VNĐ|Việt Nam Đồng|USD|Đồng))"),
    # Free-text times ("Không quy định", "Không phải trả kết quả ...") before a fee value.
    re.compile(rf"(?P<time>[^()\d][^()]{{0,150}}?)(?P<fee>Miễn phí|{NO_INFO})"),
)


@dataclass(frozen=True)
class MethodRow:
    method: Method
    time: ProcessingTime
    fee_text: str | None  # the fee value cell ("Miễn phí", "135 VNĐ"); None = no information
    fee_description: str | None  # the note in brackets after the fee value
    description: str | None  # the "Mô tả" column
    fee_amounts: list[int] = field(default_factory=list)

    @property
    def value_text(self) -> str:
        return " ".join(t for t in (self.fee_text, self.fee_description, self.description) if t)


def _match_head(body: str, pos: int) -> re.Match[str] | None:
    for head_re in _HEAD_RES:
        match = head_re.match(body, pos)
        if match:
            return match
    return None


def _row_starts(body: str) -> list[tuple[int, re.Match[str], re.Match[str]]]:
    """Positions where a new table row begins: a method label glued to a time and fee value.

    Labels inside descriptions ("- Trực tuyến: nộp ...", "Trực tiếp tại ...") are followed by
    punctuation or a space, never by a glued time cell, so they are not row starts.
    """
    starts = []
    for label in _LABEL_RE.finditer(body):
        following = body[label.end() : label.end() + 1]
        if not following or not (following.isdigit() or following.isupper()):
            continue
        head = _match_head(body, label.end())
        if head:
            starts.append((label.start(), label, head))
    return starts


def _split_bracket(text: str) -> tuple[str | None, str]:
    """A leading "( ... )" group (balanced) and the rest."""
    if not text.startswith("("):
        return None, text
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return text[1:index], text[index + 1 :]
    return text[1:], ""  # unbalanced: the note runs to the end of the row


def parse_methods(cell: str | None) -> list[MethodRow]:
    """Undo the concatenated "Cách thức thực hiện" table into one MethodRow per row."""
    text = (cell or "").strip()
    if not _clean(text):
        return []
    if not text.startswith(METHODS_HEADER):
        raise CellError(f"missing table header {METHODS_HEADER!r}: {text[:60]!r}")
    body = text[len(METHODS_HEADER) :]
    if not body.strip():
        return []
    starts = _row_starts(body)
    if not starts or starts[0][0] != 0:
        raise CellError(f"unknown submission method label at {body[:40]!r}")
    rows = []
    for index, (_, label, head) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(body)
        note, rest = _split_bracket(body[head.end() : end])
        fee_text = _clean(head.group("fee"))
        note, description = _clean(note), _clean(rest)
        amounts = fee_amounts(fee_text, " ".join(t for t in (note, description) if t))
        rows.append(
            MethodRow(
                method=METHOD_LABELS[label.group(0)],
                time=parse_time(head.group("time")),
                fee_text=fee_text,
                fee_description=note,
                description=description,
                fee_amounts=amounts,
            )
        )
    return rows


# --- documents (thanh_phan_ho_so) --------------------------------------------------------------

DOCUMENTS_HEADER = "Tên giấy tờMẫu đơn, tờ khaiSố lượng"
_QUANTITY_RE = re.compile(r"(\d+) bản chính(?:,(\d+) bản sao)?")
_FORM_EXT_RE = re.compile(r"\.(?:docx?|pdf|xlsx?|rar|zip|odt)$", re.IGNORECASE)
_GLUE_RE = re.compile(rf"(?<={LOWER[:-1]}.)])(?={UPPER})")


@dataclass(frozen=True)
class DocumentRow:
    name: str
    originals: int | None
    copies: int | None
    form_name: str | None
    case_name: str | None


def _split_form(entry: str) -> tuple[str, str | None]:
    """Split "<name><form file>.doc" into (name, form file)."""
    ext = _FORM_EXT_RE.search(entry)
    if not ext:
        return entry, None
    # the file name starts after the last ";", ":", ")" or line break before its extension
    start = max(entry.rfind(mark, 0, ext.start()) for mark in ";:)\n") + 1
    glue = _GLUE_RE.search(entry, start, ext.end())
    if glue and glue.start() > start:
        start = glue.start()
    name = entry[:start].strip()
    return (name, entry[start:].strip()) if name else (entry, None)


def parse_documents(cell: str | None) -> list[DocumentRow]:
    """Documents per case: "<case>Tên giấy tờ...Số lượng<name><form?>1 bản chính..."."""
    text = _clean((cell or "").strip().strip("-"))
    if not text:
        return []
    if DOCUMENTS_HEADER not in text:
        # Free text instead of a table: one document without quantities.
        return [DocumentRow(text, None, None, None, None)]
    parts = text.split(DOCUMENTS_HEADER)
    case_name = _case_name(parts[0])
    documents: list[DocumentRow] = []
    for part in parts[1:]:
        pos = 0
        for match in _QUANTITY_RE.finditer(part):
            entry = part[pos : match.start()].strip()
            pos = match.end()
            if entry:
                name, form = _split_form(entry)
                copies = int(match.group(2)) if match.group(2) else 0
                documents.append(DocumentRow(name, int(match.group(1)), copies, form, case_name))
        # what follows the last quantity is the next case's title
        case_name = _case_name(part[pos:])
    return documents


def _case_name(text: str) -> str | None:
    text = text.strip().strip("-").strip()
    return _clean(text)


# --- legal bases (can_cu_phap_ly) --------------------------------------------------------------

LEGAL_HEADER = "Tên văn bản pháp lýMã văn bản"
_CODE_RE = re.compile(
    rf"\d{{1,4}}/\d{{4}}/[A-ZĐ][A-ZĐ0-9-]*?(?={UPPER}{LOWER}|{LOWER}|\s|[.,;)\"”]|$)"
)
_NUMBER_PREFIX_RE = re.compile(
    r"(?<=\S)(?:Số|Luật số|Luật|Nghị định số|Nghị định|Thông tư số|Thông tư|Quyết định số|"
    r"Quyết định|Nghị quyết số|Nghị quyết|Pháp lệnh số|Pháp lệnh)\s*$"
)


@dataclass(frozen=True)
class LegalRow:
    title: str
    number: str | None


def _number_start(segment: str, start: int) -> int:
    """Where the number begins when title digits and number digits were glued together.

    "Luật 54/2014/QH1354/2014/QH13": the number repeats one inside the title;
    "Luật Khiếu nại năm 201102/2011/QH13": numbers are zero-padded ("02"), years are not.
    """
    digits = segment[start:].split("/", 1)[0]
    cuts = [start + offset for offset in range(len(digits))]
    in_title = [cut for cut in cuts if segment[cut:] in segment[:cut]]
    if in_title:
        return in_title[0]
    if start > 0 and segment[start - 1].isdigit():
        padded = [cut for cut in cuts if segment[cut] == "0"]
        if padded:
            return padded[0]
    return start


def _split_number(segment: str, code_start: int) -> LegalRow:
    """Separate a "<title><number>" pair; the number may carry a prefix ("Luật số 32/...")."""
    start = _number_start(segment, code_start)
    prefix = _NUMBER_PREFIX_RE.search(segment[:start])
    if prefix:
        start = prefix.start()
    title = segment[:start].strip(" ;,.-")
    number = segment[start:].strip()
    return LegalRow(title, number) if title else LegalRow(number, None)


def _code_end(body: str, pos: int, code: re.Match[str]) -> int:
    """The shortest code ending before a capitalised word may be cut short when the next title
    lost its first letter ("...TT-BCAhông tư" for "Thông tư"): extend it by capitals as long as
    the longer code is one the title itself cites."""
    end = code.end()
    while (
        body[end : end + 1].isupper() and body[code.start() : end + 1] in body[pos : code.start()]
    ):
        end += 1
    return end


def parse_legal_bases(cell: str | None) -> list[LegalRow]:
    text = _clean(cell)
    if not text:
        return []
    if not text.startswith(LEGAL_HEADER):
        # A free-text cell (no table): keep it as one title.
        return [LegalRow(text, None)]
    body = text[len(LEGAL_HEADER) :]
    rows: list[LegalRow] = []
    seen: set[tuple[str, str | None]] = set()
    pos = 0
    for code in _CODE_RE.finditer(body):
        if code.start() < pos:
            continue
        end = _code_end(body, pos, code)
        after = body[end : end + 2]
        if after and not (after[:1].isupper() and after[1:].islower()) and not after[:1].islower():
            continue  # a number inside a title, followed by more title text
        row = _split_number(body[pos:end], code.start() - pos)
        pos = end
        key = (row.title, row.number)
        if row.title and key not in seen:
            seen.add(key)
            rows.append(row)
    tail = _clean(body[pos:])
    if tail:
        rows.append(LegalRow(tail, None))
    return rows


# --- levels and online level -------------------------------------------------------------------

_LEVEL_LABELS = {
    "Cấp bộ": Level.MINISTRY,
    "Cấp tỉnh": Level.PROVINCE,
    "Cấp xã": Level.COMMUNE,
    "Cơ quan khác": Level.OTHER,
}


def parse_levels(cell: str | None) -> list[str]:
    """ "Cấp bộ, Cấp tỉnh" -> ["bo", "tinh"]; an unknown label raises CellError."""
    levels: list[str] = []
    for part in (p.strip() for p in (_clean(cell) or "").split(",")):
        if not part:
            continue
        if part not in _LEVEL_LABELS:
            raise CellError(f"unknown level {part!r}")
        if _LEVEL_LABELS[part].value not in levels:
            levels.append(_LEVEL_LABELS[part].value)
    return levels


_NAME_LEVEL_RE = re.compile(r"(?:dich vu cong|truc tuyen) (?:truc tuyen )?(toan trinh|mot phan)")


def online_level_from_name(name: str) -> OnlineLevel | None:
    """The level a procedure name states ("... bằng dịch vụ công trực tuyến toàn trình")."""
    folded_name = " ".join(fold_accents(name).lower().split())
    match = _NAME_LEVEL_RE.search(folded_name)
    if not match:
        return None
    return OnlineLevel.FULL if match.group(1) == "toan trinh" else OnlineLevel.PARTIAL
