"""Lambda entry for the ingest function's on-failure destination: mark a job whose last attempt died failed."""

from heimdall.jobs import failure_handler

handler = failure_handler()
