"""Custom Rasa NLU components for Vietnamese chat messages."""
