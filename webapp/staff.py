"""Hotline staff area under /staff (sign-in required): search as you type, procedure pages with
a read-aloud summary, and what the bot could not answer.

Pages are Jinja2 templates in webapp/templates/staff/ (autoescaped); the wording of every fact
comes from procedures_db.answers, the data from procedures_db.queries; the browser code is
webapp/static/staff/staff.js (no inline scripts, so the CSP can forbid them).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from procedures_db.answers import place_answer, plan_documents, summary_script
from procedures_db.answers.text import method_rows
from procedures_db.answers.values import online_summary
from procedures_db.db import get_engine
from procedures_db.facts import LEVEL_LABELS, ONLINE_LABELS, UNKNOWN, known
from procedures_db.profile import ProvinceProfile, load_profile_or_default
from procedures_db.queries import ProcedureDetails, procedure_names
from webapp import auth
from webapp.api import error_response, json_errors, json_response
from webapp.clientip import client_ip, is_https
from webapp.lookup import (
    MAX_QUERY_LENGTH,
    LookupUnavailable,
    call_blocking,
    list_fields,
    parse_search_params,
    procedure_details,
    search_procedures,
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


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    # Autoescape everything: values from the records and from citizens are never trusted.
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
    )


def render(name: str, **values: object) -> Markup:
    return Markup(_environment().get_template(name).render(unknown=UNKNOWN, **values))


def page(
    title: str,
    content: Markup,
    identity: auth.StaffIdentity | None = None,
    status: int = 200,
) -> web.Response:
    body = render("layout.html", title=title, identity=identity, content=content)
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


def message_page(request: web.Request, title: str, text: str, status: int) -> web.Response:
    content = render("message.html", title=title, text=text)
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
        secure=is_https(request),
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
    # After a failed attempt the name is filled in: the password is what to retype.
    content = render(
        "login.html",
        message=message,
        csrf_token=csrf,
        next=_safe_next(next_path),
        username=username,
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
    password = str(form.get("password", ""))  # never cut: auth refuses over-long ones
    ip_key, user_key = client_ip(request), username
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


async def search_page(request: web.Request) -> web.Response:
    query = request.query
    fields = await call_blocking(_settings(request), list_fields, _engine(request))
    content = render(
        "search.html",
        q=query.get("q", ""),
        max_query=MAX_QUERY_LENGTH,
        fields=[(f, f) for f in fields],
        levels=[(k, v) for k, v in LEVEL_LABELS.items() if k != "khac"],
        onlines=list(ONLINE_LABELS.items()),
        selected_field=query.get("field"),
        selected_level=query.get("level"),
        selected_online=query.get("online"),
    )
    return page("Tra cứu", content, request["staff"])


async def search_json(request: web.Request) -> web.Response:
    params = parse_search_params(request.query)
    results = await call_blocking(_settings(request), search_procedures, _engine(request), params)
    return json_response({"query": params.q, "count": len(results), "results": results})


# ---- procedure page --------------------------------------------------------------------------


def procedure_content(details: ProcedureDetails, profile: ProvinceProfile) -> Markup:
    levels = ", ".join(LEVEL_LABELS.get(level, level) for level in details.levels)
    overview = [
        ("Mã thủ tục", details.code),
        ("Cấp thực hiện", known(levels)),
        ("Lĩnh vực", known(details.field)),
        ("Mức độ trực tuyến", online_summary(details)),
        ("Loại thủ tục", known(details.procedure_type)),
        ("Đối tượng thực hiện", known(details.target_subjects)),
        ("Kết quả", known(details.result)),
    ]
    imported = details.imported_at.isoformat(sep=" ")[:19]
    source = [
        ("Trang gốc", known(details.source_url)),
        ("Số quyết định công bố", known(details.decision_number)),
        ("Dữ liệu nhập lúc (UTC)", imported),
    ]
    return render(
        "procedure.html",
        d=details,
        overview=overview,
        script=summary_script(details, profile),
        methods=method_rows(details),
        place=place_answer(details, profile),
        plan=plan_documents(list(details.documents)),
        source=source,
    )


async def procedure_page(request: web.Request) -> web.Response:
    code = request.match_info["code"][:64]
    settings = _settings(request)
    details = await call_blocking(settings, procedure_details, _engine(request), code)
    if details is None:
        return message_page(request, "Không tìm thấy thủ tục", f"Không có thủ tục mã {code}.", 404)
    profile = await call_blocking(settings, load_profile_or_default, settings.province_profile)
    return page(details.name, procedure_content(details, profile), request["staff"])


# ---- what the bot could not answer -------------------------------------------------------------


async def unanswered_page(request: web.Request) -> web.Response:
    settings = _settings(request)
    report = await call_blocking(settings, read_unanswered, settings.tracker_db_url)
    codes = [code for code, _ in report.top_procedures] + [row[0] for row in report.feedback]
    names = await call_blocking(settings, procedure_names, codes, engine=_engine(request))
    content = render("unanswered.html", report=report, names=names)
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
