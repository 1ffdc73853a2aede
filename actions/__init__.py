"""Custom actions of the TTHC assistant (run by `rasa run actions --actions actions`)."""
