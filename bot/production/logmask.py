"""Mask personal data (ID numbers, phone numbers, e-mail addresses) in every log record.

Rasa logs citizens' messages in several places (debug lines, "rest.message.received.failure",
structlog events rendered through the standard logging module). Masking when a record is created
covers them all, whatever handlers Rasa or the action server install later.

    python -m bot.production.logmask rasa run ...      # Rasa with masked logs
    python -m bot.production.logmask rasa_sdk ...      # action server with masked logs
"""

from __future__ import annotations

import logging
import runpy
import sys
from typing import Any

from procedures_db.privacy import mask_personal_data

_base_factory = logging.getLogRecordFactory()


def _masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep the record as logging would
        return record
    record.msg, record.args = mask_personal_data(message), None
    return record


def install() -> None:
    """Every record created from now on in this process carries masked text."""
    if logging.getLogRecordFactory() is not _masked_record:
        logging.setLogRecordFactory(_masked_record)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bot.production.logmask <module> [arguments...]")
    install()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
