"""Lambda entry for the piece queue (SQS, batch size 1): transcribe one piece of long audio once, and
stitch the job when it was the last."""

from heimdall.fanout import piece_handler

handler = piece_handler()
