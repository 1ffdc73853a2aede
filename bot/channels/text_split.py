"""Text shaping for messaging platforms: length limits, button titles, numbered choices."""

from __future__ import annotations

import re

MAX_MESSAGE_CHARS = 2000  # Zalo OA and Messenger both refuse longer texts

# Preferred cut points, best first: paragraph, line, end of sentence, any space.
_BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"[.!?…;:](?=\s)"),
    re.compile(r"\s"),
)
_CHOICE = re.compile(r"^\s*(?:số\s*)?(\d{1,2})\s*[.)]?\s*$", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(\d{1,2})[.)]\s", re.MULTILINE)
CHOICE_HEADER = "Trả lời bằng số:"


def split_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Split `text` into chunks of at most `limit` characters, cutting at the most natural
    boundary found in the second half of each chunk (a hard cut only for unbroken text)."""
    text = text.strip()
    chunks: list[str] = []
    while len(text) > limit:
        cut = _cut_point(text, limit)
        chunks.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        chunks.append(text)
    return chunks


def _cut_point(text: str, limit: int) -> int:
    window = text[:limit]
    floor = limit // 2  # never leave a tiny chunk just to respect a boundary
    for boundary in _BOUNDARIES:
        ends = [match.end() for match in boundary.finditer(window) if match.end() > floor]
        if ends:
            return ends[-1]
    return limit


def shorten(title: str, limit: int) -> str:
    """`title` cut to `limit` characters at a word boundary when possible, marked with '…'."""
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    cut = title[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-–") + "…"


def numbered_choices(text: str, titles: list[str]) -> str:
    """The message text followed by the button titles as a numbered list to answer with,
    unless the text already numbers them itself (1. … n.)."""
    if _numbers_listed(text, len(titles)):
        return text.strip()
    lines = [f"{number}. {title}" for number, title in enumerate(titles, start=1)]
    return "\n".join([text.rstrip(), "", CHOICE_HEADER, *lines]).strip()


def _numbers_listed(text: str, count: int) -> bool:
    listed = {int(match.group(1)) for match in _LIST_ITEM.finditer(text)}
    return set(range(1, count + 1)) <= listed


def chosen_number(text: str, count: int) -> int | None:
    """The 0-based index a citizen picked by answering '2', '2.' or 'số 2'; None otherwise."""
    match = _CHOICE.match(text or "")
    if not match:
        return None
    number = int(match.group(1))
    return number - 1 if 1 <= number <= count else None
