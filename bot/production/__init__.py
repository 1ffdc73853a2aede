"""Production hardening of the Rasa server: a guarded REST channel (per-sender limit, size limit,
an apology instead of silence), a tracker store that survives database outages, and masking of
personal data in every log line. Used by the production profile (scripts/prod.py, deploy/).
"""
