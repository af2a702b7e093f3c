# Generated from _async_core.py by scripts/unasync.py: do not edit by hand.
# Change the async module, then run `python scripts/unasync.py`.
"""The Devic client's core: its pool, the door, reads, writes, and stop.

Every request goes through `_exchange` (deadline, size cap, typed errors); the
retry decisions are `_base_client`'s and `_retry`'s. The follow loop
(`_async_follow`) and the client's calls (`_async_client`) stand on this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import httpx

from langchain_devic import _clock, _exchange, _retry
from langchain_devic._base_client import _BaseDevicClient
from langchain_devic._exchange import Stream
from langchain_devic._settings import STOP_SECONDS, ClientSettings
from langchain_devic._transports import build_sync_http
from langchain_devic.errors import DevicError

logger = logging.getLogger("langchain_devic")


class _SyncClientCore(_BaseDevicClient):
    """The client's pool and the exchanges every call of it is made of."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        /,
        *,
        http_client: httpx.Client | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(settings, **fields)
        self._http = http_client
        self._owns_http = http_client is None

    @property
    def http(self) -> httpx.Client:
        """The httpx client, built on first use and reused afterwards."""
        if self._http is None:
            self._http = build_sync_http(self.async_transport, self.trust_env)
        return self._http

    def close(self) -> None:
        """Close the connection pool if this client built it."""
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None

    def _exchange(
        self, request: httpx.Request, deadline: float, *, read_body: bool = True
    ) -> _exchange.Answer:
        return _exchange.send(
            self.http, request, deadline=deadline, read_body=read_body, **self._bounds
        )

    def _stream(
        self, request: httpx.Request, deadline: float
    ) -> AbstractContextManager[Stream]:
        return _exchange.open_stream(
            self.http, request, deadline=deadline, **self._bounds
        )

    def stop_run(
        self, assistant_id: str, chat_uuid: str, *, strict: bool = False
    ) -> bool:
        """Ask Devic to stop a run: once, within `STOP_SECONDS`, never retried.

        Returns whether Devic accepted the stop; its answer's body is not read.
        The best-effort stop (`strict=False`) never raises; a stop the caller
        asked for (`strict=True`) raises a typed error when Devic is not there.
        """
        self._stopping += 1
        try:
            request = self.http.build_request(
                **self._stop_args(assistant_id, chat_uuid)
            )
            answer = self._exchange(
                request, time.monotonic() + STOP_SECONDS, read_body=False
            )
            logger.info(
                "Asked Devic to stop chat %s (%s).", chat_uuid, answer.status_code
            )
        except _exchange.Failure as failure:
            if strict:
                raise self._read_error(failure) from None
            logger.warning(
                "Could not ask Devic to stop chat %s: %s", chat_uuid, failure
            )
            return False
        except Exception as exc:  # best effort: never raise from a stop
            logger.warning("Could not ask Devic to stop chat %s: %s", chat_uuid, exc)
            return False
        finally:
            self._stopping -= 1
        return answer.is_success

    # ------------------------------------------------------------------- reads

    def read(
        self,
        url: str,
        *,
        deadline: float | None = None,
        params: Mapping[str, str] | None = None,
        in_run: bool = False,
        body: Mapping[str, Any] | None = None,
    ) -> bytes:
        """GET a body; failures that may pass are retried.

        Reads change nothing on Devic, so a dropped connection or a 5xx is
        retried too; an answer that will not change (401, 403, 404) is raised.
        Outside a run a read gets `max_retries` retries within `timeout`; in a
        followed run it goes on until `deadline` (a refused connection still
        counts against `max_retries`).
        """
        return self._until_answered(
            self._read_args(url, params, body), deadline=deadline, in_run=in_run
        )

    def _until_answered(
        self,
        args: Mapping[str, Any],
        *,
        write_of: str | None = None,
        deadline: float | None = None,
        in_run: bool = False,
    ) -> bytes:
        """Exchange the request of `args` until Devic answers 2xx: its body.

        A read (`write_of` None) is retried as `read` says. A write (`write_of`
        names what it writes) is retried only while Devic certainly did not
        take it; one of unknown outcome is raised at once, never sent again.
        """
        read_deadline = deadline if deadline is not None else self._exchange_deadline()
        attempt = 0
        while True:
            outcome: bytes | DevicError
            request = self.http.build_request(**args)
            try:
                answer = self._exchange(
                    request,
                    read_deadline if write_of is None else self._write_deadline(),
                )
                outcome = answer.body if answer.is_success else self._api_error(answer)
            except _exchange.Failure as failure:
                outcome = (
                    self._read_error(failure)
                    if write_of is None
                    else self._write_error(failure, None)
                )
            if isinstance(outcome, bytes):
                return outcome
            if write_of is None:
                wait = self._read_wait(outcome, attempt, read_deadline, in_run)
            elif self._outcome_unknown(outcome):
                raise self._unsent_write(outcome, write_of)
            else:
                wait = _retry.next_wait(outcome, attempt, self.max_retries)
            if wait is None:
                raise outcome
            self._log_attempt(attempt, wait, outcome)
            _clock.sleep(wait)
            attempt += 1

    # ------------------------------------------------------------------ writes

    def post(self, url: str, body: Mapping[str, Any] | None, *, what: str) -> bytes:
        """POST a write that is not a turn; its answer's body.

        Retried only when Devic certainly did not take it (no connection, a
        429, a 503, ...); a failure after the request was written is raised
        at once, saying the `what` may be in.
        """
        return self._until_answered(self._post_args(url, body), write_of=what)
