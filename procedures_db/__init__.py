"""Procedures database: schema, importers, search and CLI. No Rasa imports here."""
