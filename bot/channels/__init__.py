"""Rasa input channels for the platforms citizens already use: Zalo OA and Facebook Messenger."""
