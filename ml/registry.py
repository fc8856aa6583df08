"""The model registry on the object store (bucket ``TUNELAKE_MODELS_BUCKET``), Spark-free.

Layout::

    als/<version>/model.json         parameters, Silver Delta versions trained on, the last
                                     play's time, code version, training time, the search's
                                     trials and the gate's decision (a refused candidate
                                     keeps its reason)
    als/<version>/metrics.json       the candidate's and the baselines' offline metrics
    als/<version>/user_factors.npy   users x rank (float32), row i = user_ids[i]
    als/<version>/item_factors.npy   items x rank (float32), row i = item_ids[i]
    als/<version>/user_ids.json      the id mappings: position = ALS's integer id
    als/<version>/item_ids.json
    als/<version>/seen.npz           training interactions (indptr, indices, values)
    als/current                      {"version", "promoted_at", "previous": [...]}

Versions are written once and never changed; ``current`` is the only object promotion and
rollback change, each with a conditional write (the ETag it read), so two at once cannot
lose one. ``previous`` lists the versions promoted before, most recent first, so a
rollback restores the one before.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

import numpy as np

from ml.gate import GateDecision
from ml.model import AlsModel, AlsParams, Interactions
from tunelake.clients import s3_client
from tunelake.settings import SOURCE_ROOT, Settings

log = logging.getLogger(__name__)

PREFIX = "als"
POINTER = f"{PREFIX}/current"


class RegistryError(RuntimeError):
    """The model registry could not do what was asked."""


class UnknownVersionError(RegistryError):
    """No model version of that name is in the registry."""


class NothingToRollBackError(RegistryError):
    """No version was promoted before the current one."""


class ConcurrentPromotionError(RegistryError):
    """The current pointer moved under a promotion or rollback: nothing was written."""


@dataclass(frozen=True)
class Pointer:
    version: str
    promoted_at: str
    previous: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "promoted_at": self.promoted_at,
            "previous": list(self.previous),
        }


def new_version(now: datetime | None = None) -> str:
    """A version name that sorts by creation time: ``20261130T012345Z-1a2b3c``."""
    return f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def code_version() -> dict[str, str | None]:
    """The package version, and the git commit when running from a checkout."""
    sha = None
    if (SOURCE_ROOT / ".git").exists():
        try:
            sha = subprocess.run(
                ["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            log.warning("git commit of %s unknown", SOURCE_ROOT)
    try:
        package = metadata.version("tunelake")
    except metadata.PackageNotFoundError:
        package = None
    return {"package": package, "git_sha": sha}


def _key(version: str, name: str) -> str:
    return f"{PREFIX}/{version}/{name}"


def _put(settings: Settings, key: str, body: bytes) -> None:
    s3 = s3_client(settings)
    try:
        s3.put_object(Bucket=settings.models_bucket, Key=key, Body=body)
    except s3.exceptions.NoSuchBucket as e:
        raise RegistryError(
            f"no bucket {settings.models_bucket!r} on {settings.s3_endpoint_url}: "
            "`tunelake up` creates it locally"
        ) from e


def _get(settings: Settings, key: str) -> bytes | None:
    s3 = s3_client(settings)
    try:
        return s3.get_object(Bucket=settings.models_bucket, Key=key)["Body"].read()
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        return None


def _put_json(settings: Settings, key: str, value: object) -> None:
    _put(settings, key, json.dumps(value, indent=1, sort_keys=True).encode())


def _get_json(settings: Settings, key: str) -> dict | list | None:
    body = _get(settings, key)
    return None if body is None else json.loads(body)


def _put_array(settings: Settings, key: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    _put(settings, key, buffer.getvalue())


def _require(settings: Settings, version: str, name: str) -> bytes:
    body = _get(settings, _key(version, name))
    if body is None:
        raise UnknownVersionError(
            f"model version {version!r} has no {name} in s3://{settings.models_bucket}/"
            f"{PREFIX}/ (see `tunelake model list`)"
        )
    return body


def save(
    settings: Settings,
    model: AlsModel,
    *,
    metrics: dict[str, object],
    decision: GateDecision,
    silver_versions: dict[str, int],
    trained_at: datetime,
    trained_through: datetime | None,
    training_seconds: float,
    trials: list[dict] | None = None,
    version: str | None = None,
) -> str:
    """Store a trained model with its record; returns its version. The record is
    written last, so a version listed has every artifact."""
    version = version or new_version(trained_at)
    _put_array(settings, _key(version, "user_factors.npy"), model.user_factors)
    _put_array(settings, _key(version, "item_factors.npy"), model.item_factors)
    _put_json(settings, _key(version, "user_ids.json"), list(model.user_ids))
    _put_json(settings, _key(version, "item_ids.json"), list(model.item_ids))
    seen = io.BytesIO()
    np.savez(seen, indptr=model.seen.indptr, indices=model.seen.indices, values=model.seen.values)
    _put(settings, _key(version, "seen.npz"), seen.getvalue())
    _put_json(settings, _key(version, "metrics.json"), metrics)
    _put_json(
        settings,
        _key(version, "model.json"),
        {
            "version": version,
            "algorithm": "spark-mllib-als-implicit",
            "params": model.params.to_dict(),
            "users": len(model.user_ids),
            "items": len(model.item_ids),
            "interactions": int(model.seen.indices.size),
            "silver_versions": silver_versions,
            "code_version": code_version(),
            "trained_at": trained_at.isoformat(),
            # The last play trained on: the current model is judged on later plays only.
            "trained_through": trained_through.isoformat() if trained_through else None,
            "training_seconds": round(training_seconds, 3),
            "search_trials": trials or [],
            "gate": decision.to_dict(),
        },
    )
    log.info("saved model %s to s3://%s/%s/", version, settings.models_bucket, PREFIX)
    return version


def show(settings: Settings, version: str) -> dict:
    """A version's record (``model.json``) with its ``metrics``."""
    record = json.loads(_require(settings, version, "model.json"))
    record["metrics"] = json.loads(_require(settings, version, "metrics.json"))
    return record


def list_versions(settings: Settings) -> list[dict]:
    """Every stored version, oldest first: version, trained_at, ndcg@10, gate decision and
    whether it is the current one."""
    s3 = s3_client(settings)
    versions = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=settings.models_bucket, Prefix=f"{PREFIX}/", Delimiter="/"
        ):
            versions += [p["Prefix"].split("/")[1] for p in page.get("CommonPrefixes", [])]
    except s3.exceptions.NoSuchBucket:
        return []
    live = current(settings)
    summaries = []
    for version in sorted(versions):
        record = _get_json(settings, _key(version, "model.json"))
        if record is None:  # a save still writing, or one that died before its record
            continue
        metrics = _get_json(settings, _key(version, "metrics.json")) or {}
        summaries.append(
            {
                "version": version,
                "trained_at": record["trained_at"],
                "ndcg@10": metrics.get("candidate", {}).get("ndcg@10"),
                "gate": record["gate"],
                "current": version == live,
            }
        )
    return summaries


def _pointer_and_tag(settings: Settings) -> tuple[Pointer | None, str | None]:
    """The pointer and its object's ETag, which a conditional write must still match."""
    s3 = s3_client(settings)
    try:
        answer = s3.get_object(Bucket=settings.models_bucket, Key=POINTER)
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        return None, None
    value = json.loads(answer["Body"].read())
    return Pointer(value["version"], value["promoted_at"], tuple(value["previous"])), answer["ETag"]


def pointer(settings: Settings) -> Pointer | None:
    return _pointer_and_tag(settings)[0]


def current(settings: Settings) -> str | None:
    """The promoted version, or None before the first promotion."""
    live = pointer(settings)
    return live.version if live else None


# ``promote``'s default: move the pointer from whatever it names now.
ANY = object()


def _swap_pointer(settings: Settings, tag: str | None, moved: Pointer, was: str | None) -> None:
    """Write the pointer only if nobody wrote it since it was read (``tag``: its ETag, or
    None when there was none): S3's If-Match / If-None-Match, so of two promotions at once
    one wins and the other fails here, instead of silently undoing the first."""
    s3 = s3_client(settings)
    condition = {"IfMatch": tag} if tag else {"IfNoneMatch": "*"}
    try:
        s3.put_object(
            Bucket=settings.models_bucket,
            Key=POINTER,
            Body=json.dumps(moved.to_dict(), indent=1, sort_keys=True).encode(),
            **condition,
        )
    except s3.exceptions.ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status not in (409, 412):
            raise
        raise ConcurrentPromotionError(
            f"the current model changed while moving it from {was} to {moved.version} "
            f"(now {current(settings)}): nothing was changed; check `tunelake model list` and "
            "try again"
        ) from e


def promote(settings: Settings, version: str, *, expected: object = ANY) -> Pointer:
    """Make ``version`` the current model (also a refused one: an operator's decision);
    the version it replaces goes on top of ``previous``. ``expected``: the version that
    must be current now (None: none) - the one the gate judged the candidate against."""
    _require(settings, version, "model.json")
    live, tag = _pointer_and_tag(settings)
    was = live.version if live else None
    if expected is not ANY and expected != was:
        raise ConcurrentPromotionError(
            f"model {version} was judged against {expected}, but the current model is now "
            f"{was}: not promoted; retrain, or promote it by hand"
        )
    if live and live.version == version:
        return live
    history = (live.version, *live.previous) if live else ()
    moved = Pointer(version, datetime.now(UTC).isoformat(), history)
    _swap_pointer(settings, tag, moved, was)
    log.info("promoted model %s (was %s)", version, was)
    return moved


def rollback(settings: Settings) -> Pointer:
    """Make the previously promoted version current again."""
    live, tag = _pointer_and_tag(settings)
    if live is None or not live.previous:
        raise NothingToRollBackError(
            "no model was promoted before the current one: nothing to roll back to"
        )
    restored = Pointer(live.previous[0], datetime.now(UTC).isoformat(), live.previous[1:])
    _swap_pointer(settings, tag, restored, live.version)
    log.info("rolled back model %s to %s", live.version, restored.version)
    return restored


def load(settings: Settings, version: str | None = None) -> AlsModel:
    """The model of ``version`` (default: the current one) as numpy arrays."""
    if version is None:
        version = current(settings)
        if version is None:
            raise UnknownVersionError("no model has been promoted yet")
    record = json.loads(_require(settings, version, "model.json"))
    seen = np.load(io.BytesIO(_require(settings, version, "seen.npz")))
    return AlsModel(
        params=AlsParams.from_dict(record["params"]),
        user_ids=json.loads(_require(settings, version, "user_ids.json")),
        item_ids=json.loads(_require(settings, version, "item_ids.json")),
        user_factors=np.load(io.BytesIO(_require(settings, version, "user_factors.npy"))),
        item_factors=np.load(io.BytesIO(_require(settings, version, "item_factors.npy"))),
        seen=Interactions(seen["indptr"], seen["indices"], seen["values"]),
    )
