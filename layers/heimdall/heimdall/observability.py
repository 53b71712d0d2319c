"""Structured logging: one JSON line per request (Powertools Logger), never audio, never keys."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="heimdall")
