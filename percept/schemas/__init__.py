"""Pydantic wire models, one module per service (XxxRequest / XxxResponse)."""
