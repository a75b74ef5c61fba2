"""A WebSocket server (`--emit ws://HOST:PORT`): every connected client gets each event as one
text message holding the same JSON as a `--json` line, in order, from the moment it connects
(a client joining late gets the events from then on). What clients send is ignored.

The server runs its own asyncio loop on one thread, "momke-outlet-ws". The session's event thread
only hands a line over (`call_soon_threadsafe`), so no client can hold up the pipeline: each client
has a bounded queue (`queue_size` messages), and a client that falls that far behind (it does not
read, or its network is slower than the events) loses the newest events rather than the session
waiting; they are counted (`dropped`, per client and in all) and logged once per client. On close
every client gets what is queued for it (within the close timeout), then a normal close.

Port 0 picks a free port: `port` and `url` give the one bound once open. Anyone who can reach the
port reads the events (transcripts included): bind to 127.0.0.1 unless the network is yours.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from . import OutletError, SessionInfo

log = logging.getLogger(__name__)

_END = object()  # queued last for each client on close


class _Client:
    def __init__(self, connection, queue_size: int) -> None:
        self.connection = connection
        self.queue: asyncio.Queue = asyncio.Queue(queue_size)
        self.dropped = 0
        address = getattr(connection, "remote_address", None)
        self.name = f"{address[0]}:{address[1]}" if address else "a client"


class WebSocketOutlet:
    def __init__(self, host: str, port: int, queue_size: int = 256, close_timeout_s: float = 0.5) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.host, self.port = host, int(port)
        self.queue_size = queue_size
        self.close_timeout_s = close_timeout_s
        self.name = self.description = f"ws://{host}:{port}"
        self.dropped = 0  # events not sent to a client that fell behind, all clients together
        self._clients: set[_Client] = set()
        self._handlers: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._error: BaseException | None = None
        self._flush_s = self._closing_s = 0.5  # set by close() from its timeout

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def clients(self) -> int:
        return len(self._clients)

    def open(self, info: SessionInfo | None = None) -> None:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(started,), name="momke-outlet-ws", daemon=True)
        self._thread.start()
        started.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = self._loop = None
            raise OutletError(f"--emit {self.name}: cannot listen: {self._error}") from self._error
        self.name = self.description = self.url

    def _run(self, started: threading.Event) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(started))
        finally:
            started.set()
            loop.close()

    async def _serve(self, started: threading.Event) -> None:
        from websockets.asyncio.server import serve

        self._closing = asyncio.Event()
        try:
            self._server = await serve(self._handle, self.host, self.port, close_timeout=self.close_timeout_s,
                                       ping_interval=None, compression=None)
        except OSError as error:  # the port is taken, the address is not this machine's
            self._error = error
            return
        self.port = self._server.sockets[0].getsockname()[1]
        started.set()
        await self._closing.wait()  # until close()
        await self._shutdown()

    async def _handle(self, connection) -> None:
        from websockets.exceptions import ConnectionClosed

        client = _Client(connection, self.queue_size)
        self._clients.add(client)
        self._handlers.add(asyncio.current_task())
        try:
            while True:
                line = await client.queue.get()
                if line is _END:
                    break
                await connection.send(line)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            self._handlers.discard(asyncio.current_task())
            if client.dropped:
                log.warning("WebSocket client %s: %d event(s) dropped in all (it fell behind)", client.name,
                            client.dropped)

    def _broadcast(self, line: str) -> None:
        for client in list(self._clients):
            try:
                client.queue.put_nowait(line)
            except asyncio.QueueFull:
                client.dropped += 1
                self.dropped += 1
                if client.dropped == 1:
                    log.warning("WebSocket client %s falls behind: events dropped (more than %d waiting)",
                                client.name, self.queue_size)

    def send(self, event) -> None:
        self.send_line(event.to_json())

    def send_line(self, line: str) -> None:
        """Queue one text message for every client connected now; never waits."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._broadcast, line)

    async def _shutdown(self) -> None:
        for client in list(self._clients):
            if client.queue.full():  # room for the end mark: the client was dropping anyway
                client.queue.get_nowait()
                client.dropped += 1
                self.dropped += 1
            client.queue.put_nowait(_END)
        if self._handlers:  # each client gets what is queued for it, then a normal close
            await asyncio.wait(set(self._handlers), timeout=self._flush_s)
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), timeout=self._closing_s)
        except (asyncio.TimeoutError, TimeoutError):
            pass
        leftover = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    def close(self, timeout: float = 1.0) -> None:
        """Send what is queued, close every connection and end the server's thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._flush_s, self._closing_s = max(0.05, timeout * 0.5), max(0.05, timeout * 0.4)
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._closing.set)
            except RuntimeError:  # closed meanwhile
                pass
        thread.join(timeout + 0.2)
        if thread.is_alive():
            log.warning("the WebSocket outlet's thread is still running after close")
        self._loop = self._thread = None
