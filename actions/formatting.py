"""Vietnamese answer texts built only from a procedure record and the province profile.

Pure functions (no I/O) so they are easy to test. A value the record lacks is reported as not
available with the way to get it (hotline or national portal), never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from actions.questions import Fact
from procedures_db.facts import clean, method_fee, method_label, method_time, trim
from procedures_db.profile import ProvinceProfile, contact_hint
from procedures_db.queries import DocumentDetails, MethodDetails, ProcedureDetails

ONLINE_LEVEL_TEXT = {
    "toan_trinh": "Làm được hoàn toàn trực tuyến (dịch vụ công trực tuyến toàn trình): nộp hồ sơ,"
    " nộp phí và nhận kết quả qua mạng, không phải đến cơ quan.",
    "mot_phan": "Dịch vụ công trực tuyến một phần: bạn nộp hồ sơ trực tuyến nhưng vẫn phải đến"
    " cơ quan để nộp bản giấy hoặc nhận kết quả.",
    "truc_tiep": "Thủ tục này chưa nộp trực tuyến được: chỉ nộp trực tiếp hoặc qua bưu chính.",
    "chua_ro": "Thủ tục này có nộp hồ sơ trực tuyến, nhưng cơ sở dữ liệu chưa ghi rõ là toàn"
    " trình hay một phần.",
}
LEVEL_SCALE_NOTE = "(Theo cách gọi cũ: mức độ 4 ≈ toàn trình, mức độ 3 ≈ một phần.)"
FACT_LABELS = {
    Fact.PLACE: "nơi nộp hồ sơ",
    Fact.TIME: "thời gian giải quyết",
    Fact.FEE: "phí, lệ phí",
    Fact.DOCUMENTS: "thành phần hồ sơ",
    Fact.STEPS: "trình tự thực hiện",
    Fact.REQUIREMENTS: "yêu cầu, điều kiện",
    Fact.ONLINE: "mức độ dịch vụ công trực tuyến",
}
MAX_DOCUMENTS = 8
MAX_STEPS = 4


def not_available(fact: Fact, profile: ProvinceProfile) -> str:
    return f"Cơ sở dữ liệu chưa có thông tin về {FACT_LABELS[fact]}. {contact_hint(profile)}"


def header(details: ProcedureDetails) -> str:
    return f"Thủ tục: {clean(details.name)} (Mã TTHC: {details.code})"


def _per_method(
    details: ProcedureDetails, value_of: Callable[[MethodDetails], str | None]
) -> list[tuple[str, str]]:
    """(method label, value) for every method that has a value."""
    pairs = []
    for method in details.methods:
        value = value_of(method)
        if value:
            pairs.append((method_label(method), value))
    return pairs


def _grouped(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """One line per distinct value, naming every method it applies to."""
    groups: dict[str, list[str]] = {}
    for label, value in pairs:
        groups.setdefault(value, []).append(label)
    return [f"- {', '.join(labels)}: {value}" for value, labels in groups.items()]


def time_text(details: ProcedureDetails, profile: ProvinceProfile) -> str:
    pairs = _per_method(details, method_time)
    if not pairs:
        return not_available(Fact.TIME, profile)
    return "Thời gian giải quyết: " + "; ".join(f"{label}: {value}" for label, value in pairs)


def fee_text(details: ProcedureDetails, profile: ProvinceProfile) -> str:
    pairs = _per_method(details, method_fee)
    if not pairs:
        return not_available(Fact.FEE, profile)
    return "Phí, lệ phí:\n" + "\n".join(_grouped(pairs))


def portal_url(details: ProcedureDetails, profile: ProvinceProfile) -> str:
    return clean(details.online_submit_url) or profile.online_portal_url


def _has_method(details: ProcedureDetails, method: str) -> bool:
    return any(m.method == method for m in details.methods)


def place_text(details: ProcedureDetails, profile: ProvinceProfile) -> str:
    lines = []
    agencies = clean(details.implementing_agencies) or clean(details.competent_agency)
    if agencies:
        lines.append(f"- Cơ quan thực hiện: {agencies}")
    if clean(details.receiving_address):
        lines.append(f"- Địa chỉ tiếp nhận: {trim(clean(details.receiving_address), 300)}")
    levels = set(details.levels or [])
    if "tinh" in levels and profile.centre_name:
        where = ", ".join(filter(None, (profile.centre_name, profile.centre_address)))
        hours = f" (giờ làm việc: {profile.opening_hours})" if profile.opening_hours else ""
        lines.append(f"- Nộp trực tiếp tại {where}{hours}")
    if "xa" in levels and profile.commune_one_stop:
        lines.append(f"- Cấp xã: {profile.commune_one_stop}")
    if not lines:
        lines.append(f"- Cơ quan tiếp nhận: chưa có thông tin. {contact_hint(profile)}")
    if _has_method(details, "truc_tuyen"):
        lines.append(f"- Nộp trực tuyến: {portal_url(details, profile)}")
    if _has_method(details, "buu_chinh"):
        lines.append("- Hoặc gửi hồ sơ qua dịch vụ bưu chính.")
    return "Nơi nộp hồ sơ:\n" + "\n".join(lines)


def online_text(
    details: ProcedureDetails, profile: ProvinceProfile, *, level_scale: bool = False
) -> str:
    level = details.online_level if details.online_level in ONLINE_LEVEL_TEXT else "chua_ro"
    lines = [f"Nộp trực tuyến: {ONLINE_LEVEL_TEXT[level]}"]
    if level_scale:
        lines.append(LEVEL_SCALE_NOTE)
    if level != "truc_tiep":
        lines.append(f"Nộp tại: {portal_url(details, profile)}")
    return "\n".join(lines)


def quantity(document: DocumentDetails) -> str:
    parts = []
    if document.originals:
        parts.append(f"{document.originals} bản chính")
    if document.copies:
        parts.append(f"{document.copies} bản sao")
    return ", ".join(parts)


def _case_title(case: str) -> str:
    return trim(case.strip(" *-+:"), 150) + ":"


def _documents_in_order(documents: list[DocumentDetails]) -> list[DocumentDetails]:
    """Grouped by case (in source order); within a case, papers with a quantity before notes."""
    first_seen: dict[str | None, int] = {}
    for document in documents:
        first_seen.setdefault(clean(document.case_name), len(first_seen))
    return sorted(
        documents,
        key=lambda d: (first_seen[clean(d.case_name)], not (d.originals or d.copies)),
    )


def documents_text(details: ProcedureDetails, profile: ProvinceProfile) -> str:
    documents = _documents_in_order(list(details.documents))
    if not documents:
        return not_available(Fact.DOCUMENTS, profile)
    lines: list[str] = []
    case = None
    for index, document in enumerate(documents[:MAX_DOCUMENTS], start=1):
        if clean(document.case_name) and clean(document.case_name) != case:
            case = clean(document.case_name)
            lines.append(_case_title(case))
        amount = quantity(document)
        name = trim((clean(document.name) or "").lstrip("-+ "), 220)
        lines.append(f"{index}. {name}" + (f" ({amount})" if amount else ""))
    if len(documents) > MAX_DOCUMENTS:
        lines.append(f"… và {len(documents) - MAX_DOCUMENTS} mục khác (xem chi tiết ở nguồn).")
    return "Thành phần hồ sơ:\n" + "\n".join(lines)


_STEP_SPLIT = re.compile(r"\n+|(?=Bước \d+\s*[:.])")


def steps_text(details: ProcedureDetails, profile: ProvinceProfile) -> str:
    steps = [clean(part) for part in _STEP_SPLIT.split(details.steps or "")]
    steps = [step for step in steps if step]
    if not steps:
        return not_available(Fact.STEPS, profile)
    lines = [f"- {trim(step, 250)}" for step in steps[:MAX_STEPS]]
    if len(steps) > MAX_STEPS:
        lines.append("… (các bước tiếp theo xem ở nguồn)")
    return "Các bước thực hiện:\n" + "\n".join(lines)


def requirements_text(details: ProcedureDetails, profile: ProvinceProfile) -> str:
    requirements = clean(details.requirements)
    if not requirements:
        return not_available(Fact.REQUIREMENTS, profile)
    return f"Yêu cầu, điều kiện: {trim(requirements, 600)}"


def overview_text(details: ProcedureDetails, profile: ProvinceProfile) -> str:
    lines = []
    if clean(details.field):
        lines.append(f"Lĩnh vực: {clean(details.field)}")
    if clean(details.implementing_agencies):
        lines.append(f"Cơ quan thực hiện: {clean(details.implementing_agencies)}")
    lines.append(time_text(details, profile))
    lines.append(online_text(details, profile))
    lines.append("Bạn có thể hỏi thêm: hồ sơ cần gì, lệ phí, nộp ở đâu, các bước, điều kiện.")
    return "\n".join(lines)


def fact_text(
    fact: Fact, details: ProcedureDetails, profile: ProvinceProfile, *, level_scale: bool
) -> str:
    if fact is Fact.ONLINE:
        return online_text(details, profile, level_scale=level_scale)
    builders: dict[Fact, Callable[[ProcedureDetails, ProvinceProfile], str]] = {
        Fact.OVERVIEW: overview_text,
        Fact.PLACE: place_text,
        Fact.TIME: time_text,
        Fact.FEE: fee_text,
        Fact.DOCUMENTS: documents_text,
        Fact.STEPS: steps_text,
        Fact.REQUIREMENTS: requirements_text,
    }
    return builders[fact](details, profile)


def procedure_answer(
    details: ProcedureDetails,
    facts: list[Fact],
    profile: ProvinceProfile,
    *,
    level_scale: bool = False,
) -> str:
    """Name and code, one paragraph per asked fact, then the source link."""
    parts = [header(details)]
    parts += [fact_text(fact, details, profile, level_scale=level_scale) for fact in facts]
    if clean(details.source_url):
        parts.append(f"Nguồn: {clean(details.source_url)}")
    # One message: Rasa's REST channel splits a text at blank lines into separate messages.
    return "\n".join(parts)
