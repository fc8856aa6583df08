"""A small client for the Confluent-compatible schema registry REST API.

Apicurio Registry serves this API under ``/apis/ccompat/v7`` locally; Confluent Schema
Registry and Karapace serve the same paths, so production may use any of them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from typing import Any

import httpx

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Compatibility(StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FULL = "FULL"
    NONE = "NONE"


class RegistryError(RuntimeError):
    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(f"schema registry answered {status_code}: {message}")


class IncompatibleSchemaError(RegistryError):
    """The registry refused a schema that breaks the subject's compatibility rule."""


def subject_for(topic: str) -> str:
    """Confluent's TopicNameStrategy: the value schema of ``topic`` lives in ``<topic>-value``."""
    return f"{topic}-value"


class SchemaRegistry:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )
        self._schemas_by_id = lru_cache(maxsize=256)(self._fetch_schema)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SchemaRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            error = IncompatibleSchemaError if response.status_code == 409 else RegistryError
            raise error(response.status_code, message)
        return response.json() if response.content else None

    def set_compatibility(self, subject: str, level: Compatibility) -> None:
        self._request("PUT", f"/config/{subject}", {"compatibility": level.value})

    def register(self, subject: str, schema: dict) -> int:
        """Register ``schema`` (an Avro schema as a dict) and return its global id.

        Registering a schema the subject already holds returns the existing id.
        """
        body = {"schema": json.dumps(schema), "schemaType": "AVRO"}
        return int(self._request("POST", f"/subjects/{subject}/versions", body)["id"])

    def is_compatible(self, subject: str, schema: dict) -> bool:
        body = {"schema": json.dumps(schema), "schemaType": "AVRO"}
        result = self._request("POST", f"/compatibility/subjects/{subject}/versions/latest", body)
        return bool(result["is_compatible"])

    def _fetch_schema(self, schema_id: int) -> dict:
        return json.loads(self._request("GET", f"/schemas/ids/{schema_id}")["schema"])

    def schema(self, schema_id: int) -> dict:
        """The schema registered under ``schema_id`` (ids are immutable, so cached)."""
        return self._schemas_by_id(schema_id)

    def versions(self, subject: str) -> dict[int, dict]:
        """Every schema registered under ``subject``, by global id (empty if none)."""
        try:
            numbers = self._request("GET", f"/subjects/{subject}/versions")
        except RegistryError as exc:
            if exc.status_code == 404:
                return {}
            raise
        found = {}
        for number in numbers:
            version = self._request("GET", f"/subjects/{subject}/versions/{number}")
            found[int(version["id"])] = json.loads(version["schema"])
        return found

    def subjects(self) -> list[str]:
        return list(self._request("GET", "/subjects"))
