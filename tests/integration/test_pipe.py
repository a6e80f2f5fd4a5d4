"""The pipelined connection on a real redis-server: replies in order, errors per command."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ResponseError

from monitor_es.store.log import PartitionStore, _raw_entries
from monitor_es.store.pipe import Pipe, PipeBroken

pytestmark = pytest.mark.redis


def _pipe(client: redis.Redis) -> Pipe:
    return Pipe(client.connection_pool.get_connection())


def test_replies_can_be_collected_in_any_order(real_client: redis.Redis) -> None:
    pipe = _pipe(real_client)
    first = pipe.send("SET", "a", "1")
    second = pipe.send("INCR", "a")
    third = pipe.send("GET", "a")

    assert third.result() == b"2"  # reads the two replies before it on the way
    assert first.result() == b"OK"
    assert second.result() == 2
    assert pipe.idle


def test_an_error_reply_belongs_to_its_own_command(real_client: redis.Redis) -> None:
    pipe = _pipe(real_client)
    real_client.set("text", "abc")
    before = pipe.send("INCR", "counter")
    bad = pipe.send("INCR", "text")
    after = pipe.send("ECHO", "still in step")

    assert after.result() == b"still in step"  # read past the error without raising it
    assert before.result() == 1
    with pytest.raises(ResponseError):
        bad.result()


def test_a_lost_connection_fails_every_outstanding_reply(real_client: redis.Redis) -> None:
    pipe = _pipe(real_client)
    waiting = [pipe.send("PING"), pipe.send("PING")]
    pipe.connection.disconnect()  # the socket is gone before the replies were read

    with pytest.raises(PipeBroken):
        waiting[1].result()
    with pytest.raises(PipeBroken):
        waiting[0].result()
    assert pipe.idle


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_read_ahead_parses_both_protocols(redis_server: str, protocol: int) -> None:
    client = redis.Redis.from_url(redis_server, protocol=protocol)
    client.delete("s")
    client.xgroup_create("s", "g", id="0", mkstream=True)
    client.xadd("s", {b"e": b"payload"}, id="5-1")
    client.xadd("s", {b"other": b"x", b"e": b"second"}, id="5-2")
    client.xadd("s", {b"other": b"x"}, id="5-3")
    pipe = _pipe(client)

    reply = pipe.send("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "s", ">")
    empty = pipe.send("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "s", ">")

    assert _raw_entries(reply.result()) == [("5-1", b"payload"), ("5-2", b"second"), ("5-3", b"")]
    assert _raw_entries(empty.result()) == []
    client.delete("s")
    client.close()


def test_closing_a_store_reads_what_is_outstanding(real_client: redis.Redis) -> None:
    store = PartitionStore(real_client, 0)
    pipe = store._pipe()
    pipe.send("PING")
    connection = pipe.connection

    store.close()

    assert pipe.idle
    assert store._pipeline is None
    # Handed back in a clean state: the next command on it gets its own reply.
    assert connection.send_command("ECHO", "x") is None
    assert connection.read_response() == b"x"
