"""Writes the API Gateway events in events/ (REST v1 and HTTP API v2 proxy events, in the shape
`sam local generate-event apigateway aws-proxy` / `http-api-proxy` produce) carrying a real
multipart upload of tests/fixtures/audio/hello.wav, base64-encoded as API Gateway delivers it.

    python scripts/make_events.py      # then: sam local invoke ApiFunction -e events/<name>.json
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = "heimdall-event-boundary-7c1f"


def multipart(fields: dict[str, str], filename: str, audio: bytes, content_type: str) -> bytes:
    out = bytearray()
    for name, value in fields.items():
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    out += audio + f"\r\n--{BOUNDARY}--\r\n".encode()
    return bytes(out)


def rest_v1(path: str, query: dict[str, str], body: bytes) -> dict[str, object]:
    headers = {
        "Accept": "application/json",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Host": "1234567890.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "AzureOpenAI/Python 3.51.0",
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        "api-key": "example-gateway-key",
    }
    return {
        "body": base64.b64encode(body).decode(),
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": "POST",
        "isBase64Encoded": True,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "123456",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "09/Apr/2015:12:34:56 +0000",
            "requestTimeEpoch": 1428582896000,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "accessKey": None,
                "sourceIp": "127.0.0.1",
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "AzureOpenAI/Python 3.51.0",
                "user": None,
            },
            "path": f"/prod{path}",
            "resourcePath": "/{proxy+}",
            "httpMethod": "POST",
            "apiId": "1234567890",
            "protocol": "HTTP/1.1",
        },
    }


def http_v2(path: str, query: str, body: bytes) -> dict[str, object]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": [],
        "headers": {
            "accept": "application/json",
            "authorization": "Bearer example-gateway-key",
            "content-length": str(len(body)),
            "content-type": f"multipart/form-data; boundary={BOUNDARY}",
            "host": "abcdefghij.execute-api.us-east-1.amazonaws.com",
            "user-agent": "OpenAI/Python 3.51.0",
            "x-forwarded-for": "127.0.0.1",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")) if query else None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "OpenAI/Python 3.51.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Mar/2020:05:16:23 +0000",
            "timeEpoch": 1583817383220,
        },
        "body": base64.b64encode(body).decode(),
        "pathParameters": None,
        "isBase64Encoded": True,
        "stageVariables": None,
    }


def main() -> None:
    audio = (ROOT / "tests/fixtures/audio/hello.wav").read_bytes()
    events = {
        "api-v1-azure-transcription.json": rest_v1(
            "/openai/openai/deployments/whisper-1/audio/transcriptions",
            {"api-version": "2024-06-01"},
            multipart({"model": "whisper-1", "response_format": "json"}, "hello.wav", audio, "audio/wav"),
        ),
        "api-v2-openai-transcription.json": http_v2(
            "/openai/v1/audio/transcriptions",
            "",
            multipart(
                {
                    "model": "whisper-1",
                    "response_format": "verbose_json",
                    "timestamp_granularities[]": "word",
                },
                "hello.wav",
                audio,
                "audio/wav",
            ),
        ),
    }
    for name, event in events.items():
        (ROOT / "events" / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote events/{name}")


if __name__ == "__main__":
    main()
