"""Delete conversations idle for more than N days from the Rasa tracker store (personal data).

A conversation is every event of one sender in Rasa's SQL `events` table; it is deleted when its
newest event is older than the limit, so an active conversation is never cut in half. Deletes in
batches, each in its own transaction: safe to run while Rasa serves (e.g. a daily cron job).

    python scripts/retention.py --days 180 [--url postgresql://...] [--dry-run]
    python scripts/retention.py --every 86400    # daily, as `make run` starts it

It also deletes, in the procedures database (--handover-url), call-back numbers older than
CALLBACK_RETENTION_DAYS and ended hand-overs to staff older than --days
(procedures_db.handover.purge).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from procedures_db.settings import get_settings

BATCH = 500


@dataclass(frozen=True)
class RetentionReport:
    conversations: int
    events: int


def _events_table(engine: sa.engine.Engine) -> sa.Table | None:
    if not sa.inspect(engine).has_table("events"):
        return None
    return sa.Table("events", sa.MetaData(), autoload_with=engine)


def delete_old_conversations(
    url: str, days: float, *, now: float | None = None, dry_run: bool = False
) -> RetentionReport:
    if days <= 0:
        raise ValueError(f"--days must be positive, got {days}")
    cutoff = (time.time() if now is None else now) - days * 86_400
    engine = sa.create_engine(url, future=True)
    try:
        events = _events_table(engine)
        if events is None:
            return RetentionReport(0, 0)
        stale = (
            sa.select(events.c.sender_id)
            .group_by(events.c.sender_id)
            .having(sa.func.max(events.c.timestamp) < cutoff)
        )
        with engine.connect() as connection:
            senders = list(connection.execute(stale).scalars())
        deleted = 0
        for start in range(0, len(senders), BATCH):
            batch = senders[start : start + BATCH]
            where = events.c.sender_id.in_(batch)
            with engine.begin() as connection:
                if dry_run:
                    count = sa.select(sa.func.count()).select_from(events).where(where)
                    deleted += connection.execute(count).scalar_one()
                else:
                    # Re-check the age: a conversation may have resumed since the selection.
                    recent = sa.select(events.c.sender_id).where(
                        events.c.sender_id.in_(batch), events.c.timestamp >= cutoff
                    )
                    statement = sa.delete(events).where(where, events.c.sender_id.not_in(recent))
                    deleted += connection.execute(statement).rowcount
        return RetentionReport(len(senders), deleted)
    finally:
        engine.dispose()


def purge_handovers(url: str, days: float, callback_days: float) -> None:
    """Call-back numbers and old hand-overs (personal data too); skipped before the first import."""
    from datetime import datetime

    from procedures_db import handover

    if not handover.store_available(url):
        return
    engine = sa.create_engine(url, future=True)
    try:
        if not sa.inspect(engine).has_table("handovers"):
            return
        report = handover.purge(
            now=datetime.utcnow(), days=days, callback_days=callback_days, engine=engine
        )
    finally:
        engine.dispose()
    print(
        f"Deleted {report.callback_numbers} call-back numbers and {report.handovers} ended "
        f"hand-overs ({report.messages} messages)"
    )


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=settings.tracker_retention_days)
    parser.add_argument("--url", default=settings.tracker_db_url, help="tracker store database")
    parser.add_argument("--dry-run", action="store_true", help="count only, delete nothing")
    parser.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="run now and then every SECONDS until stopped; a failed run is retried next time",
    )
    parser.add_argument("--handover-url", default=settings.database_url, help="procedures database")
    args = parser.parse_args(argv)
    if args.every:
        while True:
            run_once(args)
            time.sleep(args.every)
    return run_once(args)


def run_once(args: argparse.Namespace) -> int:
    try:
        report = delete_old_conversations(args.url, args.days, dry_run=args.dry_run)
        if not args.dry_run:
            purge_handovers(args.handover_url, args.days, get_settings().callback_retention_days)
    except (ValueError, sa.exc.SQLAlchemyError) as error:
        print(f"retention: {error}", file=sys.stderr, flush=True)
        return 1
    verb = "Would delete" if args.dry_run else "Deleted"
    where = sa.engine.make_url(args.url).render_as_string(hide_password=True)
    print(
        f"{verb} {report.conversations} conversations ({report.events} events) idle for more "
        f"than {args.days:g} days from {where}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
