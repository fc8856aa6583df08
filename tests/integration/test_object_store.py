from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from tunelake.clients import s3_client


def test_up_created_the_contract_buckets(s3):
    names = {b["Name"] for b in s3_client(s3).list_buckets()["Buckets"]}
    assert set(s3.buckets) <= names


def test_put_get_list_delete(s3):
    client = s3_client(s3)
    prefix = f"_tests/{uuid.uuid4().hex}/"
    bodies = {f"{prefix}part-{i}.bin": bytes(range(256)) * (i + 1) for i in range(3)}
    for key, body in bodies.items():
        client.put_object(Bucket=s3.lakehouse_bucket, Key=key, Body=body)

    listed = client.list_objects_v2(Bucket=s3.lakehouse_bucket, Prefix=prefix)
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(bodies)
    assert {o["Key"]: o["Size"] for o in listed["Contents"]} == {
        k: len(v) for k, v in bodies.items()
    }
    key = f"{prefix}part-2.bin"
    assert client.get_object(Bucket=s3.lakehouse_bucket, Key=key)["Body"].read() == bodies[key]
    ranged = client.get_object(Bucket=s3.lakehouse_bucket, Key=key, Range="bytes=10-19")
    assert ranged["Body"].read() == bodies[key][10:20]

    client.delete_objects(
        Bucket=s3.lakehouse_bucket, Delete={"Objects": [{"Key": k} for k in bodies]}
    )
    assert client.list_objects_v2(Bucket=s3.lakehouse_bucket, Prefix=prefix)["KeyCount"] == 0
    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket=s3.lakehouse_bucket, Key=key)
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


def test_wrong_credentials_are_refused(s3):
    bad = s3.model_copy(update={"s3_secret_key": SecretStr("wrong")})
    with pytest.raises(ClientError) as refused:
        s3_client(bad).list_objects_v2(Bucket=s3.lakehouse_bucket)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
