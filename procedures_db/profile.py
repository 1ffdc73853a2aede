"""Province profile: the operator's YAML file with the province's own contact facts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from procedures_db.office_hours import OfficeHours, OfficeHoursError, parse_office_hours
from procedures_db.settings import get_settings

logger = logging.getLogger(__name__)

NATIONAL_PORTAL_URL = "https://dichvucong.gov.vn"
# The national portal's public support line and help page: what every citizen can use when a
# province has published nothing of its own.
NATIONAL_HOTLINE = "18001096"
NATIONAL_SUPPORT_URL = "https://dichvucong.gov.vn/p/home/dvc-cau-hoi-pho-bien.html"


class ProfileError(ValueError):
    """The profile file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class ProvinceProfile:
    province_name: str | None = None
    online_portal_url: str = NATIONAL_PORTAL_URL
    centre_name: str | None = None
    centre_address: str | None = None
    opening_hours: str | None = None
    hotline: str | None = None
    staff_chat_hours: OfficeHours | None = None  # when staff answer chats handed over
    commune_one_stop: str | None = None
    support_hotline: str = NATIONAL_HOTLINE
    support_url: str = NATIONAL_SUPPORT_URL

    def unknown_fields(self) -> list[str]:
        return [name for name, value in self.__dict__.items() if value is None]


def _text(value: object, path: Path, field: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, (str, int)):
        raise ProfileError(f"{path}: field '{field}' must be text, got {type(value).__name__}")
    return str(value).strip()


def _office_hours(raw: object, path: Path) -> OfficeHours | None:
    try:
        return parse_office_hours(raw, str(path))
    except OfficeHoursError as error:
        raise ProfileError(str(error)) from None


# The profile read last per path, with the file's modification time, size and inode: the bot
# reads it for every answer, so it is parsed again only when the file changed.
_read_profiles: dict[Path, tuple[tuple[int, int, int], ProvinceProfile]] = {}


def load_profile(path: Path | None = None) -> ProvinceProfile:
    """Read the profile; a missing file gives the default (national portal only)."""
    path = path or get_settings().province_profile
    try:
        stat = path.stat()
    except FileNotFoundError:
        return ProvinceProfile()
    version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    known = _read_profiles.get(path)
    if known is not None and known[0] == version:
        return known[1]
    profile = _read_profile(path)
    _read_profiles[path] = (version, profile)
    return profile


def _read_profile(path: Path) -> ProvinceProfile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ProfileError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping at the top level")
    centre = raw.get("public_administration_centre") or {}
    if not isinstance(centre, dict):
        raise ProfileError(f"{path}: field 'public_administration_centre' must be a mapping")
    field_of = "public_administration_centre."
    return ProvinceProfile(
        province_name=_text(raw.get("province_name"), path, "province_name"),
        online_portal_url=_text(raw.get("online_portal_url"), path, "online_portal_url")
        or NATIONAL_PORTAL_URL,
        centre_name=_text(centre.get("name"), path, field_of + "name"),
        centre_address=_text(centre.get("address"), path, field_of + "address"),
        opening_hours=_text(centre.get("opening_hours"), path, field_of + "opening_hours"),
        hotline=_text(centre.get("hotline"), path, field_of + "hotline"),
        staff_chat_hours=_office_hours(raw.get("staff_chat_hours"), path),
        commune_one_stop=_text(raw.get("commune_one_stop"), path, "commune_one_stop"),
        support_hotline=_text(raw.get("support_hotline"), path, "support_hotline")
        or NATIONAL_HOTLINE,
        support_url=_text(raw.get("support_url"), path, "support_url") or NATIONAL_SUPPORT_URL,
    )


def load_profile_or_default(path: Path | None = None) -> ProvinceProfile:
    """The profile, or the default one (national portal only) when the file is unusable: a
    broken profile must not also break the answer that needs it. The error is logged."""
    try:
        return load_profile(path)
    except (ProfileError, OSError, UnicodeError) as error:
        logger.error("Province profile unusable, using the default profile: %s", error)
        return ProvinceProfile()


def contact_hint(profile: ProvinceProfile) -> str:
    """Where a citizen gets what the bot cannot tell: the hotline (and its hours) when the
    province published one, else the portal and the national support line and page."""
    if profile.hotline:
        hours = f" ({profile.opening_hours})" if profile.opening_hours else ""
        return f"Để được hướng dẫn, bạn vui lòng gọi đường dây nóng {profile.hotline}{hours}."
    url = profile.online_portal_url
    portal = "Cổng Dịch vụ công quốc gia" if url == NATIONAL_PORTAL_URL else "Cổng Dịch vụ công"
    return (
        f"Để được hướng dẫn, bạn có thể tra cứu trên {portal}: {url} hoặc gọi tổng đài hỗ trợ"
        f" {profile.support_hotline} (trang hỗ trợ: {profile.support_url})."
    )


def outage_apology(profile: ProvinceProfile) -> str:
    """What a citizen reads when the assistant cannot answer at all: never silence."""
    return (
        "Xin lỗi, hệ thống đang gặp sự cố nên chưa trả lời được câu hỏi của bạn. "
        f"Bạn vui lòng thử lại sau ít phút. {contact_hint(profile)}"
    )
