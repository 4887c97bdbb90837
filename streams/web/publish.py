"""The API publishes operator commands on ops.commands like every other producer of that
topic: keyed by scope, on the partition the input producers pick for that key
(``input_partitioner``; streams.control.keying), so a scope's commands land on the
partition that holds the scope's pause latch and rollout state whoever sent them. Faust's
own producer would hash keys with murmur2, hence the explicit partition."""

from __future__ import annotations

from streams.codec import AvroCodec
from streams.control.keying import Partitioner, partition_for
from streams.records import OpsCommand


class CommandPublisher:
    def __init__(self, topic: object, codec: AvroCodec, partitioner: Partitioner) -> None:
        self.topic = topic  # a faust topic of raw bytes (ops.commands, an input topic)
        self.codec = codec
        self.partitioner = partitioner

    def partition(self, scope: str) -> int:
        return partition_for(scope.encode(), self.topic.partitions or 1,  # type: ignore[attr-defined]
                             self.partitioner)

    async def publish(self, command: OpsCommand,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        """Send and wait for the broker's acknowledgement (the app's producer: acks=all);
        ``headers``: the request's trace context, which the command's decisions name."""
        pending = await self.topic.send(  # type: ignore[attr-defined]
            key=command.scope.encode(), value=self.codec.encode_record(command),
            partition=self.partition(command.scope), headers=headers)
        await pending
