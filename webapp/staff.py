"""Hotline staff area under /staff (sign-in required): search as you type, procedure pages with
a read-aloud summary, and what the bot could not answer.

Pages are rendered here from small templates in webapp/templates/staff/ (every value is
HTML-escaped unless it is a `Safe` fragment built by this module); the browser code is
webapp/static/staff/staff.js (no inline scripts, so the CSP can forbid them).
"""

from __future__ import annotations

import functools
import html
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from aiohttp import web

from procedures_db.db import get_engine
from procedures_db.profile import load_profile
from webapp import auth
from webapp.api import error_response, json_errors, json_response
from webapp.lookup import (
    LEVEL_LABELS,
    MAX_QUERY_LENGTH,
    ONLINE_LABELS,
    UNKNOWN,
    LookupUnavailable,
    call_blocking,
    known,
    list_fields,
    method_summary,
    parse_search_params,
    procedure_detail,
    search_procedures,
    summary_script,
    where_to_submit,
)
from webapp.unanswered import read_unanswered

TEMPLATES = Path(__file__).resolve().parent / "templates" / "staff"
STATIC = Path(__file__).resolve().parent / "static" / "staff"
SESSION_COOKIE = "staff_session"
LOGIN_CSRF_COOKIE = "staff_login_csrf"
COOKIE_PATH = "/staff"
LOCKOUT_WINDOW_S = 15 * 60
USER_LIMITER = web.AppKey("staff_user_failures", auth.FailureLimiter)
IP_LIMITER = web.AppKey("staff_ip_failures", auth.FailureLimiter)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Safe(str):
    """HTML that is already escaped."""


def h(value: object) -> str:
    return html.escape(str(value), quote=True)


@functools.lru_cache(maxsize=16)
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(name: str, **values: object) -> Safe:
    escaped = {k: v if isinstance(v, Safe) else h(v) for k, v in values.items()}
    return Safe(_template(name).substitute(escaped))


def page(
    title: str,
    content: Safe,
    identity: auth.StaffIdentity | None = None,
    status: int = 200,
) -> web.Response:
    nav = (
        render("nav.html", username=identity.username, csrf_token=identity.csrf_token)
        if identity
        else Safe("")
    )
    body = render("layout.html", title=title, nav=nav, content=content)
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


def message_page(request: web.Request, title: str, text: str, status: int) -> web.Response:
    content = Safe(
        f"<h1>{h(title)}</h1><p>{h(text)}</p><p><a href='/staff'>Về trang tra cứu</a></p>"
    )
    return page(title, content, request.get("staff"), status)


def _engine(request: web.Request):
    return get_engine(request.app["settings"].database_url)


def _settings(request: web.Request):
    return request.app["settings"]


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=int(auth.SESSION_LIFETIME.total_seconds()),
    )


# ---- sign-in ---------------------------------------------------------------------------------


def require_staff(handler: Handler, *, as_json: bool = False) -> Handler:
    """Signed-in staff only: others go to the sign-in page (or get a JSON 401)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(SESSION_COOKIE)
        identity = None
        if token:
            try:
                identity = await call_blocking(
                    _settings(request), auth.load_session, token, engine=_engine(request)
                )
            except LookupUnavailable:
                return message_page(
                    request, "Tạm thời không kiểm tra được đăng nhập", "Vui lòng thử lại.", 503
                )
        if identity is None:
            if as_json:
                return error_response(401, "not_signed_in", "Cần đăng nhập.")
            raise web.HTTPSeeOther(f"/staff/login?next={quote(request.path_qs, safe='/')}")
        request["staff"] = identity
        return await handler(request)

    return wrapper


def _safe_next(target: str) -> str:
    # Only paths inside the staff area: never another site ("//evil", "/\\evil").
    ok = target.startswith("/staff") and "\\" not in target and "//" not in target
    return target if ok else "/staff"


def _login_form(
    request: web.Request,
    *,
    next_path: str,
    message: str = "",
    username: str = "",
    status: int = 200,
) -> web.Response:
    csrf = secrets.token_urlsafe(32)
    notice = Safe(f'<p class="error" role="alert">{h(message)}</p>') if message else Safe("")
    content = render(
        "login.html",
        message=notice,
        csrf_token=csrf,
        next=_safe_next(next_path),
        username=username,
        # After a failed attempt the name is filled in: the password is what to retype.
        username_focus=Safe("" if username else " autofocus"),
        password_focus=Safe(" autofocus" if username else ""),
    )
    response = page("Đăng nhập", content, status=status)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, csrf)
    return response


async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, next_path=request.query.get("next", "/staff"))


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    retry = functools.partial(_login_form, request, next_path=str(form.get("next", "/staff")))
    if not auth.tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), form.get("csrf_token")):
        return retry(message="Phiên đăng nhập đã hết hạn, vui lòng thử lại.", status=403)
    username = auth.normalize_username(str(form.get("username", "")))[:64]
    password = str(form.get("password", ""))[:256]
    ip_key, user_key = request.remote or "unknown", username
    users, ips = request.app[USER_LIMITER], request.app[IP_LIMITER]
    wait_s = max(users.retry_after(user_key), ips.retry_after(ip_key))
    if wait_s:
        minutes = int(wait_s // 60) + 1
        message = f"Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {minutes} phút."
        return retry(message=message, username=username, status=429)
    engine = _engine(request)
    settings = _settings(request)
    account_id = await call_blocking(settings, auth.authenticate, username, password, engine=engine)
    if account_id is None:
        users.record_failure(user_key)
        ips.record_failure(ip_key)
        return retry(message="Sai tên đăng nhập hoặc mật khẩu.", username=username, status=401)
    users.reset(user_key)
    token = await call_blocking(settings, auth.open_session, account_id, engine=engine)
    response = web.HTTPSeeOther(_safe_next(str(form.get("next", "/staff"))))
    _set_cookie(request, response, SESSION_COOKIE, token)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    identity: auth.StaffIdentity = request["staff"]
    if not auth.tokens_match(identity.csrf_token, form.get("csrf_token")):
        return message_page(request, "Yêu cầu không hợp lệ", "Thiếu mã chống giả mạo.", 403)
    await call_blocking(
        _settings(request),
        auth.close_session,
        request.cookies[SESSION_COOKIE],
        engine=_engine(request),
    )
    response = web.HTTPSeeOther("/staff/login")
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# ---- search ----------------------------------------------------------------------------------


def _options(choices: Iterable[tuple[str, str]], selected: str | None) -> Safe:
    return Safe(
        "".join(
            f'<option value="{h(value)}"{" selected" if value == selected else ""}>'
            f"{h(label)}</option>"
            for value, label in choices
        )
    )


async def search_page(request: web.Request) -> web.Response:
    query = request.query
    fields = await call_blocking(_settings(request), list_fields, _engine(request))
    levels = [(k, v) for k, v in LEVEL_LABELS.items() if k != "khac"]
    content = render(
        "search.html",
        q=query.get("q", ""),
        max_query=MAX_QUERY_LENGTH,
        field_options=_options(((f, f) for f in fields), query.get("field")),
        level_options=_options(levels, query.get("level")),
        online_options=_options(ONLINE_LABELS.items(), query.get("online")),
    )
    return page("Tra cứu", content, request["staff"])


async def search_json(request: web.Request) -> web.Response:
    params = parse_search_params(request.query)
    results = await call_blocking(_settings(request), search_procedures, _engine(request), params)
    return json_response({"query": params.q, "count": len(results), "results": results})


# ---- procedure page --------------------------------------------------------------------------


def _text_block(value: object) -> Safe:
    text = known(value)
    css = "unknown" if text == UNKNOWN else "prose"
    return Safe(f'<div class="{css}">{h(text)}</div>')


def _section(title: str, body: str, section_id: str) -> str:
    return f'<section id="{section_id}"><h2>{h(title)}</h2>{body}</section>'


def _definition_list(rows: Iterable[tuple[str, str]]) -> str:
    items = "".join(
        f"<dt>{h(label)}</dt><dd{' class=unknown' if value == UNKNOWN else ''}>"
        f"{_link_or_text(value)}</dd>"
        for label, value in rows
    )
    return f'<dl class="facts">{items}</dl>'


def _link_or_text(value: str) -> str:
    if value.startswith(("https://", "http://")):
        return f'<a href="{h(value)}" rel="noopener noreferrer">{h(value)}</a>'
    return h(value)


def _table(headings: Iterable[str], rows: str, *, table_id: str = "", caption: str = "") -> str:
    head = "".join(f"<th>{h(heading)}</th>" for heading in headings)
    attributes = f' id="{table_id}"' if table_id else ""
    caption_html = f"<caption>{h(caption)}</caption>" if caption else ""
    return (
        f'<table class="grid"{attributes}>{caption_html}<thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _methods_table(methods: list[Mapping[str, Any]]) -> str:
    if not methods:
        return f'<p class="unknown">{UNKNOWN}</p>'
    summaries = [(m, method_summary(m)) for m in methods]
    rows = "".join(
        "<tr>"
        f"<th scope=row>{h(summary['method_label'])}</th>"
        f"<td>{h(summary['time'])}</td><td>{h(summary['fee'])}</td>"
        f"<td class=small>{h(known(m.get('fee_description') or m.get('fee_text')))}</td>"
        f"<td class=small>{h(known(m.get('description')))}</td>"
        "</tr>"
        for m, summary in summaries
    )
    headings = ["Cách nộp", "Thời gian giải quyết", "Phí, lệ phí", "Ghi chú phí (nguyên văn)"]
    return _table([*headings, "Mô tả"], rows)


def _quantity(value: object) -> str:
    return UNKNOWN if value is None else str(value)


def _documents(documents: list[Mapping[str, Any]]) -> str:
    if not documents:
        return f'<p class="unknown">{UNKNOWN}</p>'
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for document in documents:
        groups.setdefault(document.get("case_name") or "", []).append(document)
    parts = []
    headings = ["Giấy tờ", "Bản chính", "Bản sao", "Mẫu đơn, tờ khai"]
    for case, items in groups.items():
        rows = "".join(
            f"<tr><td>{h(d['name'])}</td><td class=num>{h(_quantity(d.get('originals')))}</td>"
            f"<td class=num>{h(_quantity(d.get('copies')))}</td>"
            f"<td>{h(d.get('form_name') or '')}</td></tr>"
            for d in items
        )
        parts.append(_table(headings, rows, caption=f"Trường hợp: {case}" if case else ""))
    return "".join(parts)


def _legal_basis(basis: Mapping[str, Any]) -> str:
    number = basis.get("number")
    return f"<li>{h(basis['title'])}{' — số ' + h(number) if number else ''}</li>"


def _legal_bases(bases: list[Mapping[str, Any]]) -> str:
    if not bases:
        return f'<p class="unknown">{UNKNOWN}</p>'
    return f"<ul>{''.join(_legal_basis(basis) for basis in bases)}</ul>"


def _source(detail: Mapping[str, Any]) -> str:
    imported = str(detail.get("imported_at") or "").replace("T", " ")[:19]
    rows = [
        ("Trang gốc", known(detail.get("source_url"))),
        ("Số quyết định công bố", known(detail.get("decision_number"))),
        ("Dữ liệu nhập lúc (UTC)", known(imported)),
    ]
    return _definition_list(rows)


def procedure_content(detail: Mapping[str, Any], profile) -> Safe:
    levels = ", ".join(LEVEL_LABELS.get(level, level) for level in detail.get("levels") or [])
    overview = [
        ("Mã thủ tục", detail["code"]),
        ("Cấp thực hiện", known(levels)),
        ("Lĩnh vực", known(detail.get("field"))),
        ("Mức độ trực tuyến", ONLINE_LABELS.get(detail.get("online_level"), UNKNOWN)),
        ("Loại thủ tục", known(detail.get("procedure_type"))),
        ("Đối tượng thực hiện", known(detail.get("target_subjects"))),
        ("Kết quả", known(detail.get("result"))),
    ]
    script = summary_script(detail, profile)
    summary = (
        '<div class="summary"><h2 id="summary-title">Tóm tắt để đọc cho người gọi</h2>'
        f'<pre id="summary-script" aria-labelledby="summary-title">{h(script)}</pre>'
        '<button type="button" id="copy-summary" class="no-print" data-copy="summary-script">'
        "Sao chép tóm tắt</button>"
        '<span id="copy-status" class="status no-print" role="status" aria-live="polite"></span>'
        "</div>"
    )
    sections = [
        '<p class="no-print"><a href="/staff" id="back">← Về tìm kiếm</a> '
        '<button type="button" id="print-page">In trang</button></p>',
        f"<h1>{h(detail['name'])}</h1>",
        _definition_list(overview),
        summary,
        _section("Thời gian và phí theo cách nộp", _methods_table(detail["methods"]), "methods"),
        _section("Nơi nộp hồ sơ", _definition_list(where_to_submit(detail, profile)), "where"),
        _section("Thành phần hồ sơ", _documents(detail["documents"]), "documents"),
        _section("Trình tự thực hiện", _text_block(detail.get("steps")), "steps"),
        _section("Yêu cầu, điều kiện", _text_block(detail.get("requirements")), "requirements"),
        _section("Căn cứ pháp lý", _legal_bases(detail["legal_bases"]), "legal"),
        _section("Nguồn dữ liệu", _source(detail), "source"),
    ]
    return Safe(f'<article class="procedure">{"".join(sections)}</article>')


async def procedure_page(request: web.Request) -> web.Response:
    code = request.match_info["code"][:64]
    settings = _settings(request)
    detail = await call_blocking(settings, procedure_detail, _engine(request), code)
    if detail is None:
        return message_page(request, "Không tìm thấy thủ tục", f"Không có thủ tục mã {code}.", 404)
    profile = await call_blocking(settings, load_profile, settings.province_profile)
    return page(detail["name"], procedure_content(detail, profile), request["staff"])


# ---- what the bot could not answer -------------------------------------------------------------


def _top_procedures(top: list[tuple[str, int]], names: Mapping[str, str]) -> str:
    if not top:
        return "<p>Chưa có dữ liệu.</p>"
    rows = "".join(
        f'<tr><td><a href="/staff/procedures/{h(code)}">{h(code)}</a></td>'
        f"<td>{h(names.get(code, UNKNOWN))}</td><td class=num>{count}</td></tr>"
        for code, count in top
    )
    return _table(["Mã", "Thủ tục", "Số cuộc trò chuyện"], rows, table_id="top-procedures")


def _unanswered_table(messages) -> str:
    if not messages:
        return "<p>Không có câu hỏi nào bot chưa trả lời được.</p>"
    rows = "".join(
        f"<tr><td class=nowrap>{m.timestamp:%Y-%m-%d %H:%M} UTC</td><td>{h(m.reason)}</td>"
        f'<td class="message">{h(m.text)}</td><td class=small>{h(m.detail)}</td>'
        f'<td><a href="/staff/inbox?sender={h(quote(m.sender, safe=""))}">'
        f"<code>{h(m.conversation)}</code></a></td></tr>"
        for m in messages
    )
    headings = ["Thời điểm", "Lý do", "Tin nhắn của người dân", "Chi tiết", "Cuộc trò chuyện"]
    return _table(headings, rows, table_id="unanswered")


def _procedure_names(engine, codes: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from procedures_db.models import Procedure

    with engine.connect() as connection:
        rows = connection.execute(
            select(Procedure.code, Procedure.name).where(Procedure.code.in_(codes))
        )
        return {row.code: row.name for row in rows}


async def unanswered_page(request: web.Request) -> web.Response:
    settings = _settings(request)
    report = await call_blocking(settings, read_unanswered, settings.tracker_db_url)
    codes = [code for code, _ in report.top_procedures]
    names = await call_blocking(settings, _procedure_names, _engine(request), codes)
    note = (
        ""
        if report.store_found
        else '<p class="error">Chưa có kho hội thoại (tracker store) — bot chưa nhận tin nào.</p>'
    )
    content = Safe(
        "<h1>Câu hỏi bot chưa trả lời được</h1>"
        f"{note}<p class=hint>Số điện thoại, số CCCD/CMND, email đã được che. "
        f"Đã đọc {report.events_read} sự kiện gần nhất.</p>"
        + _section("Tin nhắn gần đây", _unanswered_table(report.messages), "recent")
        + _section(
            "Thủ tục được hỏi nhiều nhất", _top_procedures(report.top_procedures, names), "top"
        )
    )
    return page("Câu hỏi bot chưa trả lời được", content, request["staff"])


# ---- routes ----------------------------------------------------------------------------------


def _page_errors(handler: Handler) -> Handler:
    """A database that does not answer gives a short Vietnamese page, not a stack trace."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except LookupUnavailable:
            return message_page(
                request, "Tạm thời không tra cứu được", "Cơ sở dữ liệu chưa trả lời, thử lại.", 503
            )

    return wrapper


def _staff_page(handler: Handler) -> Handler:
    return require_staff(_page_errors(handler))


async def staff_root_redirect(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/staff")


def setup_routes(app: web.Application) -> None:
    app[USER_LIMITER] = auth.FailureLimiter(max_failures=5, window_s=LOCKOUT_WINDOW_S)
    app[IP_LIMITER] = auth.FailureLimiter(max_failures=20, window_s=LOCKOUT_WINDOW_S)
    router = app.router
    router.add_get("/staff", _staff_page(search_page), name="staff-search")
    router.add_get("/staff/", staff_root_redirect)
    router.add_get("/staff/login", login_page, name="staff-login")
    router.add_post("/staff/login", _page_errors(login_submit))
    router.add_post("/staff/logout", _staff_page(logout), name="staff-logout")
    router.add_get("/staff/api/procedures", require_staff(json_errors(search_json), as_json=True))
    router.add_get("/staff/procedures/{code}", _staff_page(procedure_page), name="staff-procedure")
    router.add_get("/staff/unanswered", _staff_page(unanswered_page), name="staff-unanswered")
    router.add_static("/staff/static", STATIC, name="staff-static")
