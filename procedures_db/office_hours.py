"""When hotline staff answer chats: the province profile's `staff_chat_hours`, Vietnam time.

staff_chat_hours:
  days: [1, 2, 3, 4, 5]            # 1 = thứ Hai … 7 = Chủ nhật
  periods: ["07:30-11:30", "13:30-17:00"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

VIETNAM = timezone(timedelta(hours=7))  # no daylight saving time in Viet Nam
DAY_NAMES = {
    1: "thứ Hai",
    2: "thứ Ba",
    3: "thứ Tư",
    4: "thứ Năm",
    5: "thứ Sáu",
    6: "thứ Bảy",
    7: "Chủ nhật",
}
_PERIOD = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class OfficeHoursError(ValueError):
    """The `staff_chat_hours` section cannot be read; the message names the field."""


@dataclass(frozen=True)
class OfficeHours:
    days: tuple[int, ...]
    periods: tuple[tuple[time, time], ...]

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(VIETNAM)
        if local.isoweekday() not in self.days:
            return False
        return any(start <= local.time() < end for start, end in self.periods)

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment the desk opens after `now` (Vietnam time), within two weeks."""
        local = now.astimezone(VIETNAM)
        for offset in range(15):
            day = (local + timedelta(days=offset)).date()
            if day.isoweekday() not in self.days:
                continue
            for start, _end in self.periods:
                opening = datetime.combine(day, start, tzinfo=VIETNAM)
                if opening > local:
                    return opening
        return None

    def describe(self) -> str:
        """ "thứ Hai – thứ Sáu, 07:30–11:30 và 13:30–17:00" for citizens."""
        days = sorted(self.days)
        if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
            day_text = f"{DAY_NAMES[days[0]]} – {DAY_NAMES[days[-1]]}"
        else:
            day_text = ", ".join(DAY_NAMES[day] for day in days)
        periods = " và ".join(f"{start:%H:%M}–{end:%H:%M}" for start, end in self.periods)
        return f"{day_text}, {periods}"


def describe_opening(opening: datetime, now: datetime) -> str:
    """ "08:00 sáng mai" style wording: 'hôm nay', 'ngày mai' or the weekday and date."""
    local_now = now.astimezone(VIETNAM)
    days = (opening.date() - local_now.date()).days
    when = {0: "hôm nay", 1: "ngày mai"}.get(
        days, f"{DAY_NAMES[opening.isoweekday()]} {opening:%d/%m}"
    )
    return f"{opening:%H:%M} {when}"


def parse_office_hours(raw: object, source: str) -> OfficeHours | None:
    """The profile's section, or None when it is absent (hours unknown)."""
    if raw is None:
        return None
    field = f"{source}: field 'staff_chat_hours"
    if not isinstance(raw, dict):
        raise OfficeHoursError(f"{field}' must be a mapping with 'days' and 'periods'")
    days = raw.get("days")
    if not isinstance(days, list) or not days or not all(d in DAY_NAMES for d in days):
        raise OfficeHoursError(f"{field}.days' must list weekdays 1 (thứ Hai) to 7 (Chủ nhật)")
    periods = []
    for text in raw.get("periods") or []:
        match = _PERIOD.match(str(text))
        if not match:
            raise OfficeHoursError(f"{field}.periods': '{text}' is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        try:
            start, end = time(h1, m1), time(h2, m2)
        except ValueError as error:
            raise OfficeHoursError(f"{field}.periods': '{text}': {error}") from None
        if end <= start:
            raise OfficeHoursError(f"{field}.periods': '{text}' ends before it starts")
        periods.append((start, end))
    if not periods:
        raise OfficeHoursError(f"{field}.periods' must list at least one period")
    return OfficeHours(tuple(sorted(set(days))), tuple(sorted(periods)))
