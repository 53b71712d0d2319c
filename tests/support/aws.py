"""A real HTTP AWS endpoint on loopback (moto's server mode), reached by boto3 through
``AWS_ENDPOINT_URL`` exactly as Lambda code reaches AWS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's documented dummy credentials
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _atomic_conditional_writes() -> None:
    """DynamoDB applies a conditional write to an item atomically: the condition is checked and the
    write made as one step, however many clients race it. moto's backend checks and writes in Python
    with no lock, so under a threaded server two racing writers can both pass a condition. Serialising
    moto's write operations makes the fake keep the contract the real service documents (and that
    governance's exact-k admission relies on). Reads of an item are serialised with them too: moto
    applies an update's actions one by one, and a GetItem between two would see half of it."""
    import functools
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_heimdall_atomic", False):
        return
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item"):
        method = getattr(DynamoDBBackend, name)

        @functools.wraps(method)
        def serialised(self: Any, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with lock:
                return _method(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, serialised)
    DynamoDBBackend._heimdall_atomic = True  # type: ignore[attr-defined]


@contextmanager
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    _atomic_conditional_writes()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL"]}
    os.environ.update({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
    try:
        yield endpoint
    finally:
        # moto keeps every server's state in this process: clear it for the next test module
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_governance_table(name: str) -> None:
    """The governance table exactly as template.yaml declares it (keys, attribute types, TTL)."""
    import boto3
    import yaml

    class CloudFormation(yaml.SafeLoader):
        pass

    CloudFormation.add_multi_constructor("!", lambda loader, suffix, node: None)  # !Ref, !Sub… unused here
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=CloudFormation)
    table = template["Resources"]["GovernanceTable"]["Properties"]
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode=table["BillingMode"],
    )
    client.update_time_to_live(TableName=name, TimeToLiveSpecification=table["TimeToLiveSpecification"])
