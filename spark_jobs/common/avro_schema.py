"""Spark types derived from the Avro schemas in ingestion/schemas (declared once, there)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

_PRIMITIVES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "double": T.DoubleType(),
    "float": T.FloatType(),
    "boolean": T.BooleanType(),
    "bytes": T.BinaryType(),
}


def spark_type(avro_type) -> T.DataType:
    """The Spark type ``from_avro`` produces for an Avro type (the subset tunelake uses)."""
    if isinstance(avro_type, list):  # a union: ["null", X] is a nullable X
        (inner,) = [t for t in avro_type if t != "null"]
        return spark_type(inner)
    if isinstance(avro_type, str):
        return _PRIMITIVES[avro_type]
    logical = avro_type.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        return T.TimestampType()
    kind = avro_type["type"]
    if kind == "record":
        return record_struct(avro_type)
    if kind == "array":
        return T.ArrayType(spark_type(avro_type["items"]), containsNull=False)
    if kind == "enum":
        return T.StringType()
    return spark_type(kind)


def record_struct(schema: dict) -> T.StructType:
    return T.StructType(
        [T.StructField(f["name"], spark_type(f["type"]), nullable=True) for f in schema["fields"]]
    )


def field_default(field: dict) -> Column:
    """A column holding the field's Avro default, typed like the field (null if none)."""
    return F.lit(field.get("default")).cast(spark_type(field["type"]))
