"""pushd interop client: Python's websockets library with its default settings.

Usage: /usr/bin/python3 -u client.py WS_URL DOC PUSHES_JSON

Only the keepalive period is shortened: the library pings every KEEPALIVE
seconds and closes the connection (1011) when a ping's matching pong does not
come within as long. The client expects hello, joins DOC, prints READY, then
expects one push per entry of PUSHES_JSON (published by the Go test; each
entry's fields must match the push frame's). Then it sends nothing but the
library's keepalive pings for longer than the server's ping timeout and
three keepalive periods, sends ping(b"abcd") and waits for its pong.

Prints "OK: <summary>" and exits 0, or "FAIL: <reason>" and exits 1.
"""

import asyncio
import json
import logging
import sys

import websockets

KEEPALIVE = 0.3  # seconds: ping_interval and ping_timeout
DEADLINE = 5  # seconds to wait for any one expected frame or pong


class Fail(Exception):
    """A check failed; the message is the reason."""


class KeepaliveCounter(logging.Handler):
    """Counts websockets' keepalive pings and the matching pongs it received."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.pings = self.pongs = 0

    def emit(self, record):
        if record.msg == "% sending keepalive ping":
            self.pings += 1
        elif record.msg == "% received keepalive pong":
            self.pongs += 1


async def recv_json(ws, what):
    try:
        return json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
    except asyncio.TimeoutError:
        raise Fail(f"no {what} within {DEADLINE}s") from None


async def run(url, doc, pushes):
    keepalive = KeepaliveCounter()
    logger = logging.getLogger("websockets.client")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(keepalive)

    async with websockets.connect(url, ping_interval=KEEPALIVE, ping_timeout=KEEPALIVE) as ws:
        hello = await recv_json(ws, "hello")
        if hello.get("type") != "hello":
            raise Fail(f"first frame is not hello: {hello}")
        await ws.send(json.dumps({"type": "join", "doc": doc}))
        joined = await recv_json(ws, "joined")
        if joined.get("type") != "joined" or joined.get("doc") != doc:
            raise Fail(f"join answered {joined}")
        print("READY", flush=True)

        want = {p["target"]: p for p in pushes}
        while want:
            got = await recv_json(ws, f"push to {', '.join(want)}")
            p = want.get(got.get("target"))
            if got.get("type") != "push" or p is None or any(got.get(k) != v for k, v in p.items()):
                raise Fail(f"got {got}, want one of {list(want.values())}")
            del want[p["target"]]

        # Silence: the library's keepalive pings alone must keep the session.
        silence = max(hello["ping_timeout"] / 1000 + 0.5, 3 * KEEPALIVE)
        pongs = keepalive.pongs
        try:
            frame = await asyncio.wait_for(ws.recv(), silence)
            raise Fail(f"unexpected frame while silent: {frame}")
        except asyncio.TimeoutError:
            pass
        pongs = keepalive.pongs - pongs
        if pongs < 3:
            raise Fail(f"only {pongs} keepalive pongs in {silence:.1f}s silent")

        try:
            rtt = await asyncio.wait_for(await ws.ping(b"abcd"), DEADLINE)
        except asyncio.TimeoutError:
            raise Fail(f'no pong echoing ping b"abcd" within {DEADLINE}s') from None

    return (f"hello, joined {doc}, {len(pushes)} pushes; {silence:.1f}s silent "
            f"(server ping_timeout {hello['ping_timeout']}ms) on {pongs} keepalive pongs, "
            f"{keepalive.pings} keepalive pings in all; "
            f'ping b"abcd" ponged in {rtt * 1000:.1f}ms (websockets {websockets.__version__})')


def main():
    url, doc, pushes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        summary = asyncio.run(run(url, doc, pushes))
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
    except websockets.ConnectionClosed as e:
        print(f"FAIL: connection closed: {e}", flush=True)
        sys.exit(1)
    except Exception as e:  # anything else is a failure too, in one line
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    print(f"OK: {summary}", flush=True)


if __name__ == "__main__":
    main()
