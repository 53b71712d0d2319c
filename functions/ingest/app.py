"""Lambda entry for S3 ObjectCreated events on incoming/: transcribe each upload once."""

from heimdall.jobs import ingest_handler

handler = ingest_handler()
