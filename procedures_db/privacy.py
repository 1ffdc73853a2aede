"""Masking of personal data in citizens' messages, before they are stored or logged.

Citizens often paste their ID number, phone or e-mail into the chat, in many spellings: grouped
("001 203 004 567", "001-203-004-567"), glued to words ("CCCD001203004567",
"001203004567hoặc"), in full-width digits, split by non-breaking spaces. The text is
Unicode-normalised first (NFKC, odd spaces and dashes unified, invisible characters removed), so
one set of patterns covers every spelling. Text with nothing to mask is returned unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

ID_MASK = "[số CCCD/CMND]"
PHONE_MASK = "[số điện thoại]"
EMAIL_MASK = "[email]"

# Invisible characters a copy-paste may leave between digits: removed.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
# Dashes and minus signs NFKC keeps: unified to "-".
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58"), "-")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# A run of digits joined by up to three spaces, dots or dashes, optionally after "+" or "(+84)".
# Digits glued to letters still count ("CCCD001203004567", "001203004567hoặc"); a run never
# starts or ends inside a longer number (2,5 or 1.001193).
_NUMBER_RUN = re.compile(
    r"(?<!\d)(?<!\d[.,])(?:\(\+?84\)[ .\-]{0,3}|\+)?\d(?:[ .\-]{0,3}\d)*(?!\d)(?![.,]\d)"
)
# Shorter runs are codes, amounts, dates, counts; ID numbers have 9 or 12 digits, phones 10-11.
MIN_PERSONAL_DIGITS = 9
# What must stay readable although long: amounts written with thousands dots (1.500.000.000)
# and national procedure codes (1.000046.000.00.00.H12).
_AMOUNT = re.compile(r"[1-9]\d{0,2}(?:[.,]\d{3})+")
_PROCEDURE_CODE = re.compile(r"\d\.\d{6}(?:\.\d{3}\.\d{2}\.\d{2})?")
_PHONE_START = re.compile(r"\(?(?:\+|00)?84|0[1-9]")


def normalize(text: str) -> str:
    """NFKC (full-width digits, non-breaking and thin spaces become ASCII), one kind of dash."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_DASHES)


def _mask_number(match: re.Match[str]) -> str:
    run = match.group()
    digits = re.sub(r"\D", "", run)
    if (
        len(digits) < MIN_PERSONAL_DIGITS
        or _AMOUNT.fullmatch(run)
        or _PROCEDURE_CODE.fullmatch(run)
    ):
        return run
    # A whole run is masked, never a part of it: neighbouring numbers may be one number typed
    # with spaces, and leaving a few of its digits would leak them.
    is_phone = _PHONE_START.match(run) and len(digits) in (10, 11, 13)
    return PHONE_MASK if is_phone else ID_MASK


# Unicode decimal digits, as `\d` above counts them.
_DIGIT = re.compile(r"\d")


def _nothing_to_mask(text: str) -> bool:
    """True when the rules below cannot change `text`, checked without running them: most
    strings of a conversation (event names, intents, short messages) have no "@" (every e-mail
    has one) and fewer than MIN_PERSONAL_DIGITS digits (a masked run has at least that many).
    That holds for `text` itself only when NFKC leaves it unchanged: then `normalize` just
    drops invisible characters and unifies dashes, which adds no digit and no "@"; otherwise
    (full-width digits or "＠", compatibility characters) the full path decides."""
    if "@" in text or not unicodedata.is_normalized("NFKC", text):
        return False
    return len(_DIGIT.findall(text)) < MIN_PERSONAL_DIGITS


def mask_personal_data(text: str) -> str:
    """`text` with e-mail addresses, phone numbers and ID numbers replaced by placeholders."""
    if _nothing_to_mask(text):
        return text
    return _mask_all(text)


def _mask_all(text: str) -> str:
    """The rules themselves, on any text."""
    normalized = normalize(text)
    masked = _NUMBER_RUN.sub(_mask_number, _EMAIL.sub(EMAIL_MASK, normalized))
    return masked if masked != normalized else text


def mask_value(value: Any) -> Any:
    """Every string inside a JSON-like value (dicts, lists) masked; keys and numbers kept."""
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {key: mask_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(item) for item in value]
    return value
