"""The citizen wants a person: the conversation goes to the hotline staff inbox.

Within the province's staff chat hours the citizen is told a person will answer here shortly;
outside them, when the desk opens, with the offer of a call back (consent first, then the
number; procedures_db.handover handles the answers while the conversation is held). When the
hand-over cannot be recorded, the hotline, hours and centre are given instead, never invented.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.procedure_answers import PROCEDURE_SLOT, contact_profile
from procedures_db import handover
from procedures_db.db import get_engine
from procedures_db.office_hours import describe_opening
from procedures_db.profile import NATIONAL_PORTAL_URL, ProvinceProfile
from procedures_db.settings import get_settings

logger = logging.getLogger(__name__)


def handoff_text(profile: ProvinceProfile) -> str:
    """Only what the profile knows; without a province hotline, the national support line."""
    centre = ", ".join(filter(None, (profile.centre_name, profile.centre_address)))
    lines = ["Bạn có thể liên hệ trực tiếp cán bộ tiếp nhận:"]
    if profile.hotline:
        lines.append(f"- Đường dây nóng: {profile.hotline}")
    else:
        lines.append(f"- Tổng đài hỗ trợ Cổng Dịch vụ công quốc gia: {profile.support_hotline}")
        lines.append(f"- Trang hỗ trợ: {profile.support_url}")
    if profile.opening_hours:
        lines.append(f"- Giờ làm việc: {profile.opening_hours}")
    if centre:
        lines.append(f"- Trung tâm Phục vụ hành chính công: {centre}")
    lines.append(f"Tra cứu và gửi phản ánh trên Cổng Dịch vụ công quốc gia: {NATIONAL_PORTAL_URL}")
    return "\n".join(lines)


def _hotline(profile: ProvinceProfile) -> str:
    return f" Nếu cần gấp, bạn gọi đường dây nóng {profile.hotline}." if profile.hotline else ""


def within_hours_text(profile: ProvinceProfile) -> str:
    hours = profile.staff_chat_hours
    when = f" (giờ làm việc: {hours.describe()})" if hours else ""
    return (
        "Tôi đã chuyển cuộc trò chuyện tới cán bộ tổng đài. Cán bộ sẽ trả lời bạn ngay tại đây "
        f"trong ít phút{when}. Trong lúc chờ, bạn cứ nhắn thêm: cán bộ sẽ đọc được."
        + _hotline(profile)
    )


def after_hours_text(profile: ProvinceProfile, now: datetime) -> str:
    hours = profile.staff_chat_hours
    opening = hours.next_opening(now)
    reopen = f" từ {describe_opening(opening, now)}" if opening else ""
    days = get_settings().callback_retention_days
    return (
        f"Hiện đã ngoài giờ làm việc của cán bộ tổng đài ({hours.describe()}). Tôi đã chuyển "
        f"cuộc trò chuyện tới cán bộ; cán bộ sẽ trả lời bạn tại đây khi làm việc trở lại{reopen}."
        "\nBạn có muốn để lại số điện thoại để cán bộ gọi lại không? Số chỉ dùng để gọi lại và "
        f"được xoá sau {days} ngày."
    )


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


async def _request(sender: str, channel: str, code: str | None, offer_callback: bool) -> None:
    now = now_utc().replace(tzinfo=None)
    await asyncio.wait_for(
        asyncio.to_thread(
            handover.request_handover,
            sender,
            channel,
            procedure_code=code,
            offer_callback=offer_callback,
            now=now,
            engine=get_engine(),
        ),
        get_settings().action_timeout_s,
    )


class ActionHumanHandoff(Action):
    def name(self) -> str:
        return "action_human_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        profile = await contact_profile()
        now = now_utc()
        hours = profile.staff_chat_hours
        after_hours = hours is not None and not hours.is_open(now)
        channel = handover.channel_of(tracker.get_latest_input_channel())
        try:
            await _request(
                tracker.sender_id, channel, tracker.get_slot(PROCEDURE_SLOT), after_hours
            )
        except Exception:  # the citizen still gets the ways to reach a person
            logger.exception("Hand-over of %s not recorded", tracker.sender_id)
            dispatcher.utter_message(text=handoff_text(profile))
            return []
        if after_hours:
            buttons = [
                {"title": title, "payload": title}
                for title in (handover.CALLBACK_YES, handover.CALLBACK_NO)
            ]
            dispatcher.utter_message(text=after_hours_text(profile, now), buttons=buttons)
        else:
            dispatcher.utter_message(text=within_hours_text(profile))
        return []
