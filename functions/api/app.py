"""Lambda entry for the HTTP API: API Gateway (REST v1 or HTTP API v2) → Mangum → the FastAPI app.

Built once per execution environment (cold start), reused by every invocation after.
"""

from mangum import Mangum

from heimdall.api.app import create_app
from heimdall.observability import logger

# lifespan off: the app has no startup work, and Mangum would otherwise run it on every cold start.
handler = logger.inject_lambda_context(Mangum(create_app(), lifespan="off"), clear_state=True)
