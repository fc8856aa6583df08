from __future__ import annotations

import uuid

from kafka import TopicPartition
from kafka.admin import NewTopic

from tunelake.clients import kafka_admin, kafka_consumer, kafka_producer


def test_produce_consume_round_trip(kafka):
    topic = f"it_roundtrip_{uuid.uuid4().hex[:8]}"
    admin = kafka_admin(kafka)
    admin.create_topics([NewTopic(topic, 2, 1)])
    try:
        producer = kafka_producer(kafka)
        sent = {f"user-{i}".encode(): f"payload-{i}".encode() for i in range(50)}
        acks = [producer.send(topic, key=k, value=v).get(timeout=30) for k, v in sent.items()]
        producer.close()
        assert all(meta.topic == topic for meta in acks)

        consumer = kafka_consumer(kafka, topic, group_id=f"it-{topic}", consumer_timeout_ms=20_000)
        received = {}
        for message in consumer:
            received[message.key] = message.value
            if len(received) == len(sent):
                break
        consumer.close()
        assert received == sent
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_same_key_lands_in_one_partition_in_order(kafka):
    topic = f"it_order_{uuid.uuid4().hex[:8]}"
    admin = kafka_admin(kafka)
    admin.create_topics([NewTopic(topic, 3, 1)])
    try:
        producer = kafka_producer(kafka)
        acks = [
            producer.send(topic, key=b"user-42", value=str(i).encode()).get(timeout=30)
            for i in range(20)
        ]
        producer.close()
        assert len({meta.partition for meta in acks}) == 1
        partition = TopicPartition(topic, acks[0].partition)
        consumer = kafka_consumer(kafka, group_id=None)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values = []
        while len(values) < 20:
            batch = consumer.poll(timeout_ms=5000).get(partition, [])
            assert batch, "no records within 5 s"
            values += [int(m.value) for m in batch]
        consumer.close()
        assert values == list(range(20))
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_up_created_the_contract_topics(kafka):
    admin = kafka_admin(kafka)
    try:
        topics = set(admin.list_topics())
        assert set(kafka.topics) <= topics
        described = {t["name"]: t for t in admin.describe_topics(list(kafka.topics))}
    finally:
        admin.close()
    for topic in kafka.topics:
        assert len(described[topic]["partitions"]) == kafka.kafka_topic_partitions
