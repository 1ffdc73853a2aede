"""Rasa-side code of the assistant: custom NLU components live in bot.nlu."""
