"""Custom actions of the servicehub Rasa bot (rasa-sdk, Python 3.10; see actions.py)."""
