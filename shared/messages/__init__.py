"""What travels on Kafka: topic declarations and the message codecs of each topic."""

from shared.messages.topics import Topics, TopicSpec

__all__ = ["TopicSpec", "Topics"]
