"""Rasa input channels of the servicehub Rasa project (loaded by the Rasa server, Python 3.10)."""
