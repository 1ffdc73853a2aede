"""aiohttp application factory. Each area registers its own routes."""

from __future__ import annotations

from aiohttp import web

from procedures_db.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> web.Application:
    from webapp import api, inbox, portal, staff

    app = web.Application(client_max_size=64 * 1024)
    app["settings"] = settings or get_settings()
    portal.setup_routes(app)
    api.setup_routes(app)
    staff.setup_routes(app)
    inbox.setup_routes(app)
    return app


def main() -> None:
    settings = get_settings()
    web.run_app(create_app(settings), host=settings.web_host, port=settings.web_port)
