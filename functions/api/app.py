"""Lambda entry for the HTTP API: API Gateway (REST v1 or HTTP API v2) → Mangum → the FastAPI app.

Built once per execution environment (cold start), reused by every invocation after.
"""

from aws_lambda_powertools import Metrics

from heimdall.api.app import create_app
from heimdall.api.lambda_adapter import lambda_handler
from heimdall.observability import logger

metrics = Metrics(namespace="Heimdall", service="heimdall")
handler = metrics.log_metrics(
    logger.inject_lambda_context(lambda_handler(create_app(metrics=metrics)), clear_state=True),
    capture_cold_start_metric=True,
)
