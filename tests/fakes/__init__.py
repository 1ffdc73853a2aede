"""Local stand-ins for the platforms' HTTP APIs, and a helper to serve a Sanic app in tests."""
