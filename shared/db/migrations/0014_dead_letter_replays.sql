-- Dead letters put back on their topic by `autotask-sync dlq replay` (cli/deadletters.py).
--
-- topic, kafka_partition, kafka_offset  the dead letter, on the dead-letter topic
-- dead_lettered_at  its Kafka timestamp: a letter at the same place of a topic deleted and
--                   created again is another letter, not taken for this one
-- replayed_at       when Kafka acknowledged the replayed copy (one value per replay)
--
-- A replayed dead letter stays on its topic until retention removes it: `dlq list --pending` and
-- `status` count as pending only the letters without a row here. One that fails again comes
-- back as a new letter (a new offset), pending.

CREATE TABLE dead_letter_replays (
    topic             text NOT NULL,
    kafka_partition   integer NOT NULL,
    kafka_offset      bigint NOT NULL,
    dead_lettered_at  timestamptz NOT NULL,
    replayed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
