"""Lambda entry for the HTTP API: API Gateway (REST v1 or HTTP API v2) → Mangum → the FastAPI app.

Built once per execution environment (cold start), reused by every invocation after.
"""

from heimdall.api.app import create_app
from heimdall.api.lambda_adapter import lambda_handler
from heimdall.observability import logger

handler = logger.inject_lambda_context(lambda_handler(create_app()), clear_state=True)
