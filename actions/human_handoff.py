"""The citizen wants a person: the province's hotline, hours and centre, never invented."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.procedure_answers import contact_profile
from procedures_db.profile import NATIONAL_PORTAL_URL, ProvinceProfile

UNKNOWN = "chưa có thông tin"


def handoff_text(profile: ProvinceProfile) -> str:
    centre = ", ".join(filter(None, (profile.centre_name, profile.centre_address))) or UNKNOWN
    lines = [
        "Bạn có thể liên hệ trực tiếp cán bộ tiếp nhận:",
        f"- Đường dây nóng: {profile.hotline or UNKNOWN}",
        f"- Giờ làm việc: {profile.opening_hours or UNKNOWN}",
        f"- Trung tâm Phục vụ hành chính công: {centre}",
        f"Tra cứu và gửi phản ánh trên Cổng Dịch vụ công quốc gia: {NATIONAL_PORTAL_URL}",
    ]
    return "\n".join(lines)


class ActionHumanHandoff(Action):
    def name(self) -> str:
        return "action_human_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        dispatcher.utter_message(text=handoff_text(await contact_profile()))
        return []
