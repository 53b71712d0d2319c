"""Canonical types, errors and output formats: the middle that routes and providers share."""
