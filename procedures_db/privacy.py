"""Masking of personal data in citizens' messages, for staff pages and logs.

Citizens often paste their ID number, phone or e-mail into the chat. Staff reviewing what the bot
could not answer need the question, not those numbers.
"""

from __future__ import annotations

import re

ID_MASK = "[số CCCD/CMND]"
PHONE_MASK = "[số điện thoại]"
EMAIL_MASK = "[email]"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# A digit run must not continue a longer number (or a code such as 1.001193 / 135.000).
_BEFORE = r"(?<![\w.,])"
_AFTER = r"(?![\w]|[.,]\d)"
_SEP = r"[ .\-]?"
# +84 / 0084 / 84 then the national number without its leading 0 (9-10 digits), separators allowed.
_PHONE_INTL = re.compile(
    _BEFORE + r"\(?(?:\+|00)?84\)?" + _SEP + r"[1-9](?:" + _SEP + r"\d){8,9}" + _AFTER
)
# 0xxxxxxxxx (mobile, 10 digits) or 02xxxxxxxxx (landline, 11 digits), separators allowed.
_PHONE_LOCAL = re.compile(_BEFORE + r"0(?:" + _SEP + r"\d){9,10}" + _AFTER)
# Citizen identity card (12 digits) and old identity card (9 digits), written without spaces.
_ID_NUMBER = re.compile(_BEFORE + r"(?:\d{12}|\d{9})" + _AFTER)


def mask_personal_data(text: str) -> str:
    """`text` with e-mail addresses, phone numbers and ID numbers replaced by placeholders."""
    text = _EMAIL.sub(EMAIL_MASK, text)
    text = _PHONE_INTL.sub(PHONE_MASK, text)
    # A 12-digit run starting with 0 is an ID number (CCCD), not a phone number.
    text = _ID_NUMBER.sub(ID_MASK, text)
    return _PHONE_LOCAL.sub(PHONE_MASK, text)
