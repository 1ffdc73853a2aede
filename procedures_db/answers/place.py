"""Where to submit: the record's address and agencies, its level and the province's desks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procedures_db.answers.values import online_available, portal_url
from procedures_db.facts import LEVEL_LABELS, UNKNOWN, clean, trim
from procedures_db.models import Level, Method
from procedures_db.profile import ProvinceProfile

COMMUNE_DESK = "Bộ phận một cửa của UBND cấp xã nơi bạn cư trú"
PROVINCE_DESK = "Trung tâm Phục vụ hành chính công của tỉnh (Bộ phận một cửa cấp tỉnh)"
ADDRESS_LIMIT = 300


@dataclass(frozen=True)
class PlaceAnswer:
    short: str  # one line: the read-aloud script, the bot's first line, the agreement test
    rows: list[tuple[str, str]] = field(default_factory=list)  # (label, value), the full answer
    derived_from: str | None = None  # the level the desk was inferred from, when it was
    known: bool = True


def _desk(details: Any, profile: ProvinceProfile) -> tuple[str | None, str | None, bool]:
    """(desk, level label, derived): the province's own desk, else the one the level implies."""
    levels = details.levels or []
    if Level.COMMUNE.value in levels:
        if profile.commune_one_stop:
            return profile.commune_one_stop, LEVEL_LABELS["xa"], False
        return COMMUNE_DESK, LEVEL_LABELS["xa"], True
    if Level.PROVINCE.value in levels:
        if profile.centre_name:
            centre = ", ".join(filter(None, (profile.centre_name, profile.centre_address)))
            return centre, LEVEL_LABELS["tinh"], False
        return PROVINCE_DESK, LEVEL_LABELS["tinh"], True
    return None, None, False


def place_answer(details: Any, profile: ProvinceProfile) -> PlaceAnswer:
    address = clean(details.receiving_address)
    agencies = clean(details.implementing_agencies) or clean(details.competent_agency)
    ministry = clean(details.ministry) if Level.MINISTRY.value in (details.levels or []) else None
    desk, level, derived = _desk(details, profile)
    rows: list[tuple[str, str]] = []
    if address:
        rows.append(("Địa chỉ tiếp nhận", trim(address, ADDRESS_LIMIT)))
    if agencies or ministry:
        rows.append(("Cơ quan thực hiện", agencies or ministry))
    if desk:
        label = f"Nộp trực tiếp tại ({level})"
        rows.append((label, desk + (f" (suy ra từ cấp thực hiện: {level})" if derived else "")))
        if not derived and profile.opening_hours and desk != profile.commune_one_stop:
            rows.append(("Giờ làm việc", profile.opening_hours))
    if online_available(details):
        rows.append(("Nộp trực tuyến", portal_url(details, profile)))
    if any(m.method == Method.POSTAL.value for m in details.methods):
        rows.append(("Bưu chính", "có thể gửi hồ sơ qua dịch vụ bưu chính"))
    short = _short(address, agencies or ministry, desk, derived, level)
    return PlaceAnswer(short or UNKNOWN, rows, level if derived else None, short is not None)


def _short(address, agencies, desk, derived, level) -> str | None:
    if address:
        return trim(address, ADDRESS_LIMIT)
    if desk and not derived:
        return desk
    if agencies:
        return agencies
    if desk:
        return f"{desk} (suy ra từ cấp thực hiện: {level})"
    return None
