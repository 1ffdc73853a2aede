"""The web server on :8080: demo portal with the chat widget, staff lookup, JSON API."""
