"""Documents a person can bring: papers to submit and to show first, special cases grouped
after them, notes last (shown only on request).

The portal lists papers, notes and per-case lists in one table; the headings it uses as case
names ("* Giấy tờ phải nộp:", "* Lưu ý:") and the wording of each entry tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procedures_db.facts import clean, trim
from procedures_db.text import canonical, fold_accents

SUBMIT, SHOW = "nộp", "xuất trình"
_FORM_STARTS = ("to khai", "don ", "mau ", "phieu ", "ban khai", "giay de nghi", "van ban de nghi")
_SPECIAL_STARTS = ("truong hop", "doi voi", "neu ", "ngoai ra")
_SPECIAL_INSIDE = ("(doi voi", "trong truong hop", "doi voi truong hop", "(truong hop")
_NOTE_STARTS = ("luu y", "ghi chu", "chu y")


@dataclass(frozen=True)
class Paper:
    name: str
    quantity: str
    form: str | None = None


@dataclass
class DocumentPlan:
    """The record's documents, sorted into what a person brings and what only explains."""

    forms: list[Paper] = field(default_factory=list)  # tờ khai, đơn, mẫu
    submit: list[Paper] = field(default_factory=list)  # papers every applicant submits
    show: list[Paper] = field(default_factory=list)  # papers to show (xuất trình)
    special: list[Paper] = field(default_factory=list)  # "trường hợp …" papers
    cases: dict[str, list[Paper]] = field(default_factory=dict)  # per-case lists
    notes: list[str] = field(default_factory=list)

    @property
    def papers(self) -> list[Paper]:
        return [*self.forms, *self.submit, *self.show]

    def __bool__(self) -> bool:
        return bool(self.papers or self.special or self.cases or self.notes)


def quantity(document: Any) -> str:
    parts = []
    if document.originals:
        parts.append(f"{document.originals} bản chính")
    if document.copies:
        parts.append(f"{document.copies} bản sao")
    return ", ".join(parts)


def _folded(text: str) -> str:
    return fold_accents(text).lower()


def _section(case_name: str | None) -> str | None:
    """SUBMIT/SHOW for the portal's section headings, "note" for its notes, else None."""
    folded = _folded(case_name or "").strip(" *-+:")
    if not folded:
        return SUBMIT
    if folded.startswith(_NOTE_STARTS):
        return "note"
    if "xuat trinh" in folded:
        return SHOW
    if folded.startswith(("giay to phai nop", "giay to nop", "thanh phan ho so", "ho so gom")):
        return SUBMIT
    return None


def _kind(name: str, document: Any, strict: bool = True) -> str:
    """form, paper, special or note. `strict`: an entry without a quantity is a note (some
    records give no quantities at all: then only the wording decides)."""
    folded = _folded(name)
    unquantified = strict and not (document.originals or document.copies)
    if folded.startswith(_NOTE_STARTS) or unquantified:
        return "note" if not document.form_name else "form"
    if folded.startswith(_SPECIAL_STARTS) or any(cue in folded for cue in _SPECIAL_INSIDE):
        return "special"
    if document.form_name or folded.startswith(_FORM_STARTS):
        return "form"
    return "paper"


def _name(document: Any) -> str:
    return (clean(document.name) or "").lstrip("-+*• ").strip()


def _case_title(case: str) -> str:
    return trim(case.strip(" *-+:"), 150)


def plan_documents(documents: list[Any]) -> DocumentPlan:
    plan = _plan(documents, strict=True)
    return plan if plan.papers or plan.cases else _plan(documents, strict=False)


def _plan(documents: list[Any], strict: bool) -> DocumentPlan:
    plan = DocumentPlan()
    per_case: dict[str, list[tuple[str, Any]]] = {}
    for document in documents:
        name = _name(document)
        if not name:
            continue
        section = _section(clean(document.case_name))
        if section is None:
            per_case.setdefault(_case_title(document.case_name), []).append((name, document))
            continue
        kind = "note" if section == "note" else _kind(name, document, strict)
        _place(plan, kind, section, name, document)
    _split_cases(plan, per_case)
    return plan


def _place(plan: DocumentPlan, kind: str, section: str, name: str, document: Any) -> None:
    if kind == "note":
        plan.notes.append(name)
        return
    paper = Paper(name, quantity(document), clean(document.form_name))
    if kind == "special":
        plan.special.append(paper)
    elif kind == "form":
        plan.forms.append(paper)
    else:
        (plan.show if section == SHOW else plan.submit).append(paper)


def _split_cases(plan: DocumentPlan, per_case: dict[str, list[tuple[str, Any]]]) -> None:
    """Papers every case asks for (the same name in two or more cases) are common papers."""
    seen: dict[str, int] = {}
    for entries in per_case.values():
        for key in {canonical(name)[:80] for name, _ in entries}:
            seen[key] = seen.get(key, 0) + 1
    common: set[str] = set()
    for case, entries in per_case.items():
        for name, document in entries:
            key = canonical(name)[:80]
            kind = _kind(name, document)
            if kind == "note":
                plan.notes.append(name)
            elif len(per_case) > 1 and seen[key] > 1:
                if key not in common:
                    common.add(key)
                    _place(plan, kind if kind != "special" else "paper", SUBMIT, name, document)
            else:
                plan.cases.setdefault(case, []).append(
                    Paper(name, quantity(document), clean(document.form_name))
                )
