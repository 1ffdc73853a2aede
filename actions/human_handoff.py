"""The citizen wants a person: the province's hotline, hours and centre, never invented."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.procedure_answers import contact_profile
from procedures_db.profile import NATIONAL_PORTAL_URL, ProvinceProfile


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


class ActionHumanHandoff(Action):
    def name(self) -> str:
        return "action_human_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        dispatcher.utter_message(text=handoff_text(await contact_profile()))
        return []
