"""One-line values of a whole procedure: time, fee and online level over its methods."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from procedures_db import facts
from procedures_db.facts import ONLINE_LABELS, clean, method_fee, method_label, method_time
from procedures_db.models import Method, OnlineLevel
from procedures_db.text import canonical

ONLINE_PLAIN = {
    OnlineLevel.FULL.value: "làm được hoàn toàn trực tuyến: nộp hồ sơ, nộp phí và nhận kết quả"
    " qua mạng, không phải đến cơ quan.",
    OnlineLevel.PARTIAL.value: "nộp hồ sơ trực tuyến nhưng vẫn phải đến cơ quan để nộp bản giấy"
    " hoặc nhận kết quả.",
    OnlineLevel.OFFLINE.value: "chưa nộp trực tuyến được: chỉ nộp trực tiếp hoặc qua bưu chính.",
    OnlineLevel.UNKNOWN.value: "có nộp hồ sơ trực tuyến, nhưng cơ sở dữ liệu chưa ghi rõ là toàn"
    " trình hay một phần.",
}


def _grouped(details: Any, value_of: Callable[[Any], str | None]) -> str | None:
    """The value when every method has the same one, else "Trực tuyến: …; Trực tiếp: …"."""
    groups: dict[str, list[str]] = {}
    same: dict[str, str] = {}  # the same text with or without its brackets is one value
    for method in details.methods:
        value = value_of(method)
        if value:
            value = same.setdefault(canonical(value.strip("(). …")), value)
            groups.setdefault(value, []).append(method_label(method))
    if not groups:
        return None
    if len(groups) == 1 and sum(map(len, groups.values())) == len(details.methods):
        return next(iter(groups))
    return "; ".join(f"{', '.join(labels)}: {value}" for value, labels in groups.items())


def time_summary(details: Any) -> str | None:
    return _grouped(details, lambda m: method_time(m, details.steps))


def fee_summary(details: Any, on: date | None = None) -> str | None:
    on = on or facts.today()
    return _grouped(details, lambda m: method_fee(m, short=True, on=on))


def fee_detail(details: Any, on: date | None = None) -> str | None:
    """The fee with its note (validity periods marked): the first method's, since the methods'
    amounts are in the summary and their notes nearly always repeat each other."""
    on = on or facts.today()
    return next(filter(None, (method_fee(m, on=on) for m in details.methods)), None)


def online_level(details: Any) -> str:
    level = details.online_level
    return level if level in ONLINE_PLAIN else OnlineLevel.UNKNOWN.value


def online_summary(details: Any) -> str:
    return ONLINE_LABELS[online_level(details)]


def online_available(details: Any) -> bool:
    """An online method row or a published online level: either means one can apply online."""
    has_method = any(m.method == Method.ONLINE.value for m in details.methods)
    return has_method or details.online_level in (OnlineLevel.FULL.value, OnlineLevel.PARTIAL.value)


def portal_url(details: Any, profile: Any) -> str:
    return clean(details.online_submit_url) or profile.online_portal_url
