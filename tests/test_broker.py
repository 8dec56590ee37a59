"""The embedded default's Celery broker (swarmweb/broker.py): kombu's filesystem transport
with whole-or-nothing writes, and a worker that survives a file it cannot decode.

The failure it fixes, found by the soak: a worker read a message file that its producer had
created but not yet written, failed to decode it, and exited; honcho then stopped the whole
`make run` set."""

from __future__ import annotations

import logging
import multiprocessing
import queue as queue_module
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from kombu.transport import filesystem

from swarmweb import broker
from swarmweb.broker import PARTIAL_SUFFIX, Transport

QUEUE = "celery"


def options(tmp_path: Path) -> dict[str, Any]:
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    return {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
    }


def channel(tmp_path: Path, transport: Any = Transport) -> Any:
    return Connection(transport=transport, transport_options=options(tmp_path)).channel()


def consume_while_writing(
    monkeypatch: pytest.MonkeyPatch, module: Any, producer: Any, consumer: Any
) -> list[Any]:
    """Put one message with `producer`; while its file is open for writing (the payload
    being encoded), `consumer` reads the queue once. What that read got (or raised)."""
    seen: list[Any] = []
    encode = module.dumps

    def encode_and_read_meanwhile(payload: Any) -> Any:
        try:
            seen.append(consumer._get(QUEUE))
        except Exception as error:
            seen.append(error)
        return encode(payload)

    monkeypatch.setattr(module, "dumps", encode_and_read_meanwhile)
    producer._put(QUEUE, {"body": "hello"})
    monkeypatch.setattr(module, "dumps", encode)
    return seen


def test_kombus_own_transport_hands_a_half_written_message_to_a_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sequence the soak ran into, on kombu's transport as it is (kombu issue #1551). If
    # this starts failing, kombu writes whole messages now and swarmweb/broker.py may go.
    producer = channel(tmp_path, "filesystem")
    consumer = channel(tmp_path, "filesystem")
    seen = consume_while_writing(monkeypatch, filesystem, producer, consumer)
    assert len(seen) == 1
    assert isinstance(seen[0], ValueError)  # JSONDecodeError: it read ""


def test_a_message_being_written_is_not_taken_and_arrives_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer, consumer = channel(tmp_path), channel(tmp_path)
    seen = consume_while_writing(monkeypatch, broker, producer, consumer)
    assert len(seen) == 1
    assert isinstance(seen[0], queue_module.Empty)  # not taken while being written
    assert consumer._get(QUEUE) == {"body": "hello"}
    with pytest.raises(queue_module.Empty):
        consumer._get(QUEUE)
    assert list(Path(options(tmp_path)["data_folder_in"]).iterdir()) == []


def test_a_file_that_does_not_decode_is_dropped_and_the_next_message_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = Path(options(tmp_path)["data_folder_in"])
    # Names sort before any message's (`<monotonic ms>_<uuid>`, never a leading 0): "1_…" and
    # "2_…" went either side of it depending on the machine's uptime.
    (folder / f"0_a_empty.{QUEUE}.msg").write_bytes(b"")
    (folder / f"0_b_garbage.{QUEUE}.msg").write_bytes(b"\xff{not json")
    producer, consumer = channel(tmp_path), channel(tmp_path)
    producer._put(QUEUE, {"body": "after"})
    with caplog.at_level(logging.ERROR, logger="swarmweb.broker"):
        assert consumer._get(QUEUE) == {"body": "after"}
    dropped = [r for r in caplog.records if "does not decode" in r.getMessage()]
    assert len(dropped) == 2
    with pytest.raises(queue_module.Empty):
        consumer._get(QUEUE)


def test_a_leftover_partial_file_is_never_read_as_a_message(tmp_path: Path) -> None:
    # A producer that died between writing and renaming leaves a .part file behind.
    folder = Path(options(tmp_path)["data_folder_in"])
    (folder / f"1_dead.{QUEUE}.msg{PARTIAL_SUFFIX}").write_bytes(b'{"body": "cut')
    with pytest.raises(queue_module.Empty):
        channel(tmp_path)._get(QUEUE)


def produce(folder_options: dict[str, Any], count: int) -> None:
    with Connection(transport=Transport, transport_options=folder_options) as conn:
        simple = conn.SimpleQueue(QUEUE)
        for n in range(count):
            simple.put({"n": n, "pad": "x" * 2000})
        simple.close()


def test_every_message_arrives_whole_while_another_process_writes(tmp_path: Path) -> None:
    # A real producer process and this consumer at once, as the web process, beat and the
    # worker share the folder in `make run`.
    count = 400
    folder_options = options(tmp_path)
    writer = multiprocessing.get_context("spawn").Process(
        target=produce, args=(folder_options, count)
    )
    writer.start()
    got: list[int] = []
    with Connection(transport=Transport, transport_options=folder_options) as conn:
        simple = conn.SimpleQueue(QUEUE)
        while len(got) < count:
            message = simple.get(block=True, timeout=60)
            assert message.payload["pad"] == "x" * 2000
            got.append(message.payload["n"])
            message.ack()
        simple.close()
    writer.join(timeout=30)
    assert writer.exitcode == 0
    assert sorted(got) == list(range(count))
