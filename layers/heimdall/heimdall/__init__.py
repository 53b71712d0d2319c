"""Heimdall: a serverless speech-to-text gateway speaking the Bifrost / Azure OpenAI / OpenAI API."""

__version__ = "0.1.0"
