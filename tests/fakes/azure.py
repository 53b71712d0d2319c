"""Azure OpenAI's deployment route: api-key header, api-version required, deployments that exist
(Azure OpenAI data-plane reference, "Transcriptions - Create"). The body is OpenAI's."""

from __future__ import annotations

import re

from tests.fakes.base import Recorded, Rejection
from tests.fakes.openai import OpenAIFake

ROUTE = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/audio/transcriptions$")


class AzureFake(OpenAIFake):
    name = "azure"

    def __init__(self, key: str, deployments: set[str]) -> None:
        super().__init__(key)
        self.deployments = deployments

    def error_body(self, status: int) -> dict[str, object]:
        return {"error": {"code": "InternalServerError", "message": "The service is temporarily unable to process."}}

    def check(self, recorded: Recorded) -> None:
        match = ROUTE.match(recorded.path)
        if recorded.method != "POST" or match is None or "api-version" not in recorded.query:
            raise Rejection(404, {"error": {"code": "404", "message": "Resource not found"}})
        if recorded.headers.get("api-key") != self.key:
            raise Rejection(401, {"error": {"code": "401", "message": (
                "Access denied due to invalid subscription key or wrong API endpoint." + self.leak())}})  # fmt: skip
        if match["deployment"] not in self.deployments:
            raise Rejection(404, {"error": {"code": "DeploymentNotFound", "message": (
                "The API deployment for this resource does not exist.")}})  # fmt: skip
        self.check_form(recorded)
