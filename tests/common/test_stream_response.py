"""common.stream_response: the per-user cap of open streams, and the body handed to the server."""

from prometheus_client import CollectorRegistry, Gauge

from common.stream_response import SERVER_READS, Body, StreamLimiter


def limiter(cap):
    registry = CollectorRegistry()
    return StreamLimiter(cap, Gauge("open_streams", "Open streams.", registry=registry)), registry


def test_a_user_past_the_cap_is_refused_and_other_users_are_not():
    streams, registry = limiter(2)
    assert streams.acquire("ada") and streams.acquire("ada")
    assert not streams.acquire("ada")
    assert streams.acquire("bob")
    assert registry.get_sample_value("open_streams") == 3


def test_a_released_slot_can_be_taken_again():
    streams, registry = limiter(1)
    assert streams.acquire("ada")
    streams.release("ada")
    assert streams.acquire("ada") and registry.get_sample_value("open_streams") == 1


def test_closing_a_body_that_never_started_releases_its_slot_and_stops_its_generator():
    streams, _ = limiter(1)
    streams.acquire("ada")
    stopped = []

    def chunks():
        try:
            yield b"retry: 3000\n\n"
        finally:
            stopped.append(True)

    generator = chunks()
    next(generator)
    Body(generator, streams, "ada", {}).close()
    assert stopped == [True] and streams.acquire("ada")


def test_iterating_a_body_keeps_only_what_the_server_reads_of_the_environ():
    streams, _ = limiter(1)
    environ = {key: "kept" for key in SERVER_READS} | {"HTTP_AUTHORIZATION": "Bearer secret", "werkzeug.request": 1}
    chunks = iter([b"x"])
    assert iter(Body(chunks, streams, "ada", environ)) is chunks  # the generator itself, bare
    assert environ == {key: "kept" for key in SERVER_READS}
