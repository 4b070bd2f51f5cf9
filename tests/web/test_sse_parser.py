"""The page's event-stream parser (web/static/js/sse.js, `SseParser`) in real headless Chromium.

The Web UI runs under gunicorn; each test opens the page (it shows its sign-in form: nothing answers
at the public URLs) and imports the very module the page runs. Streams are fed in pieces, as a
network delivers them, and the events that come out are compared with what the WHATWG HTML standard
("Server-sent events", 9.2.6 Interpreting an event stream) says a browser's EventSource dispatches.
The expected values below are worked out from that text, not from the parser's output.
"""

import pytest

from tests.support.services import Service

PUBLIC = "http://127.0.0.1:9"  # nothing listens there; the page only needs to be told a URL

# Feed each list of chunks to a new parser; return what it dispatched, its retry, and the number of
# events out after each chunk. With `asBytes`, chunks are byte arrays read through a
# TextDecoderStream, as the page reads a response body.
PARSE = """
async ({ chunkLists, asBytes }) => {
  const { SseParser } = await import("/static/js/sse.js");
  const results = [];
  for (const chunks of chunkLists) {
    const events = [];
    const counts = [];
    const parser = new SseParser(({ id, type, data }) => events.push({ id, type, data }));
    let texts = chunks;
    if (asBytes) {
      texts = [];
      const body = new ReadableStream({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(new Uint8Array(chunk));
          controller.close();
        },
      });
      const reader = body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        texts.push(value);
      }
    }
    for (const text of texts) {
      parser.feed(text);
      counts.push(events.length);
    }
    results.push({ events, retry: parser.retry, counts });
  }
  return results;
}
"""


@pytest.fixture(scope="module")
def web_url(tmp_path_factory):
    """The Web UI under gunicorn, once for this module (the parser keeps no state between pages)."""
    service = Service(
        "web",
        {"PUBLIC_API_URL": PUBLIC, "PUBLIC_ORCHESTRATOR_URL": PUBLIC},
        tmp_path_factory.mktemp("web") / "web.log",
    )
    service.start()
    yield service.url
    service.stop()


@pytest.fixture
def sse(page, web_url):
    """`sse(chunks, ...)`: parse each list of chunks in the page; `sse.bytes(...)` reads bytes instead."""
    page.goto(web_url)
    page.locator("#signed-out").wait_for()  # the page's own modules loaded and ran

    def parse(*chunk_lists, as_bytes=False):
        return page.evaluate(PARSE, {"chunkLists": [list(c) for c in chunk_lists], "asBytes": as_bytes})

    def parse_bytes(*chunk_lists):
        return parse(*[[list(chunk) for chunk in chunks] for chunks in chunk_lists], as_bytes=True)

    parse.bytes = parse_bytes
    return parse


def event(data, event_id="", event_type="message"):
    """An event as the page's handler receives it."""
    return {"id": event_id, "type": event_type, "data": data}


def parsed(sse, *chunks):
    """The events and the retry of one stream fed in `chunks`."""
    (result,) = sse(chunks)
    return result["events"], result["retry"]


# A stream shaped like the services' (retry hint, ids, one-line JSON data, heartbeats), plus a
# multi-line event, and multi-byte text sent raw (the services escape it in JSON; UTF-8 must survive
# any split all the same), written with "\n" for the line ending.
STREAM = (
    "retry: 3000\n\n"
    ": heartbeat\n\n"
    'id: 1\nevent: step\ndata: {"seq":1,"text":"naïve — 日本 🚀"}\n\n'
    "id: 2\nevent: note\ndata: first line\ndata: second, « dernière »\n\n"
    ": heartbeat\n\n"
    'id: 3\nevent: completed\ndata: {"seq":3,"status":"completed"}\n\n'
    ": heartbeat\n\n"
)
STREAM_EVENTS = [
    event('{"seq":1,"text":"naïve — 日本 🚀"}', "1", "step"),
    event("first line\nsecond, « dernière »", "2", "note"),
    event('{"seq":3,"status":"completed"}', "3", "completed"),
]
ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_a_stream_split_at_every_byte_gives_the_same_events(sse, ending):
    data = STREAM.replace("\n", ending).encode()
    splits = (
        [[data]] + [[data[:i], data[i:]] for i in range(1, len(data))] + [[data[i : i + 1] for i in range(len(data))]]
    )
    results = sse.bytes(*splits)
    for chunks, result in zip(splits, results, strict=True):
        assert (result["events"], result["retry"]) == (STREAM_EVENTS, 3000), chunks


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_a_stream_split_at_every_character_gives_the_same_events(sse, ending):
    text = STREAM.replace("\n", ending)
    splits = [[text[:i], text[i:]] for i in range(1, len(text))] + [list(text)]
    for chunks, result in zip(splits, sse(*splits), strict=True):
        assert (result["events"], result["retry"]) == (STREAM_EVENTS, 3000), chunks


@pytest.mark.parametrize(
    "chunks, events",
    [
        (["data: a\r\ndata: b\rdata: c\n\r\n"], [event("a\nb\nc")]),
        (["data: a\r", "\ndata: b\r\n\r\n"], [event("a\nb")]),
        (["data: a\r\n\r", "\n"], [event("a")]),
        (["data: a\r\n\r", "\ndata: b\r\n\r", "\n"], [event("a"), event("b")]),
        (["data:\r", "\n\r", "\n"], [event("")]),
        (["data: a\r", "data: b\r\r", ": heartbeat\r"], [event("a\nb")]),
        (["data: a\r", "\r", "\n", "\r\n"], [event("a")]),
    ],
    ids=[
        "crlf_cr_lf_mixed",
        "crlf_split_inside_an_event",
        "crlf_split_in_the_blank_line",
        "crlf_split_in_two_blank_lines",
        "crlf_split_after_empty_data",
        "cr_at_the_end_of_a_chunk",
        "cr_then_two_blank_crlf_lines",
    ],
)
def test_cr_lf_and_crlf_each_end_one_line_even_across_chunks(sse, chunks, events):
    assert parsed(sse, *chunks) == (events, None)


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_an_event_is_dispatched_as_soon_as_its_blank_line_arrives(sse, ending):
    """A live stream may say nothing more for a heartbeat interval: the event must not wait for it.
    At the end of a stream, too, an event whose blank line arrived is dispatched (only an event
    without its blank line is discarded)."""
    (result,) = sse([f"id: 1{ending}data: a{ending}{ending}", f"data: b{ending}{ending}"])
    assert result["counts"] == [1, 2]
    assert result["events"] == [event("a", "1"), event("b", "1")]


def test_data_lines_are_joined_with_newlines(sse):
    stream = "data: first\ndata:\ndata: third\ndata: \n\n"
    assert parsed(sse, stream) == ([event("first\n\nthird\n")], None)


def test_comment_lines_are_ignored(sse):
    stream = ": hello\n\ndata: a\n: between the lines\ndata: b\n:\n\n:no space\n\n"
    assert parsed(sse, stream) == ([event("a\nb")], None)


@pytest.mark.parametrize(
    "stream, retry, events",
    [
        ("retry: 5000\n\n", 5000, []),
        ("retry:250\n\n", 250, []),
        ("retry: 5000\n\nretry: 007\n\n", 7, []),
        ("retry: 5000\ndata: a\n\n", 5000, [event("a")]),
    ],
    ids=["with_space", "without_space", "leading_zeros", "inside_an_event"],
)
def test_retry_sets_the_reconnection_time(sse, stream, retry, events):
    assert parsed(sse, stream) == (events, retry)


@pytest.mark.parametrize(
    "value",
    ["soon", "10s", "1.5", "-1", "+5", "1e3", "0x10", "5 000", "5000 ", " 5000", "١٢٣", "５"],
    ids=[
        "word",
        "unit",
        "decimal",
        "negative",
        "plus_sign",
        "exponent",
        "hex",
        "inner_space",
        "trailing_space",
        "two_leading_spaces",
        "arabic_digits",
        "fullwidth_digit",
    ],
)
def test_retry_that_is_not_only_ascii_digits_is_ignored(sse, value):
    assert parsed(sse, "retry: 5000\n\n", f"retry: {value}\n\n") == ([], 5000)


def test_an_event_with_no_data_is_not_dispatched_but_its_id_is_kept(sse):
    """The blank line still resets the event type, and sets the last event id (the spec's step 1)."""
    stream = "event: ping\n\nid: 7\n\nevent: step\nid: 8\n\ndata: x\n\n"
    assert parsed(sse, stream) == ([event("x", "8")], None)


def test_the_event_type_lasts_for_one_event(sse):
    stream = "event: step\ndata: 1\n\ndata: 2\n\nevent: done\nevent: last\ndata: 3\n\n"
    assert parsed(sse, stream) == ([event("1", event_type="step"), event("2"), event("3", event_type="last")], None)


def test_an_id_lasts_until_another_sets_or_clears_it(sse):
    stream = "id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\nid:\ndata: d\n\ndata: e\n\n"
    expected = [event("a", "1"), event("b", "1"), event("c", "2"), event("d"), event("e")]
    assert parsed(sse, stream) == (expected, None)


def test_an_id_containing_nul_is_ignored(sse):
    stream = "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid: \0\ndata: c\n\n"
    assert parsed(sse, stream) == ([event("a", "1"), event("b", "1"), event("c", "1")], None)


def test_a_field_without_colon_has_an_empty_value(sse):
    stream = "id: 1\ndata\n\ndata\ndata\n\nevent: step\nevent\ndata: x\n\nid\ndata: y\n\nfoo\ndata: z\n\n"
    expected = [event("", "1"), event("\n", "1"), event("x", "1"), event("y"), event("z")]
    assert parsed(sse, stream) == (expected, None)


def test_field_names_are_exact_and_case_sensitive(sse):
    stream = "Data: a\n\ndata : b\n\n data: c\n\nEVENT: x\nID: 9\nRetry: 10\ndata: d\n\n"
    assert parsed(sse, stream) == ([event("d")], None)


def test_one_space_after_the_colon_is_stripped_and_no_more(sse):
    stream = "data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\ndata: x \n\nevent:  spaced\nid:  1\ndata: y\n\n"
    expected = [event("x"), event("x"), event(" x"), event("\tx"), event("x "), event("y", " 1", " spaced")]
    assert parsed(sse, stream) == (expected, None)


def test_a_colon_in_the_value_is_kept(sse):
    stream = 'event: a:b\ndata: {"url":"http://x.test:1/"}\ndata::\n\n'
    assert parsed(sse, stream) == ([event('{"url":"http://x.test:1/"}\n:', event_type="a:b")], None)


def test_multi_byte_text_survives_any_split(sse):
    text = "naïve — 日本 🚀 ✓"
    data = f"data: {text}\n\n".encode()
    splits = [[data[:i], data[i:]] for i in range(1, len(data))] + [[data[i : i + 1] for i in range(len(data))]]
    for chunks, result in zip(splits, sse.bytes(*splits), strict=True):
        assert result["events"] == [event(text)], chunks


def test_an_unfinished_event_at_the_end_is_not_dispatched(sse):
    assert parsed(sse, "data: a\n\ndata: b\n", "id: 2\ndata: c") == ([event("a")], None)
