"""Importers: scraped portal pages, national API records and the province overlay CSV."""

from procedures_db.importers.report import ImportReport, Reject
from procedures_db.importers.runner import run_import

__all__ = ["ImportReport", "Reject", "run_import"]
