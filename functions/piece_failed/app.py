"""Lambda entry for the piece dead-letter queue: a piece whose receives ran out fails its job."""

from heimdall.fanout import piece_failed_handler

handler = piece_failed_handler()
