"""The SOAP path: `ProcessPayment(orderId, amount, currency)` on the legacy gateway through zeep's
async client (httpx), with a timeout per attempt. The WSDL is read on first use (in a thread: zeep
reads it synchronously), so the API starts while the gateway is down; failing to read it is a failed
attempt like any other."""

from __future__ import annotations

import asyncio

import httpx
import zeep
import zeep.exceptions
from zeep.transports import AsyncTransport

from serving_api.payments.rest import PaymentResult
from shopstream.domain import Money, PaymentRefused


class GatewayFailure(Exception):
    """The gateway did not answer (timeout, connection, HTTP error, Server fault): retry, then fall back.
    `kind` is the metric's outcome label: timeout, fault or transport."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class LegacySoapGateway:
    name = "soap-legacy"

    def __init__(self, wsdl_url: str, timeout: float) -> None:
        self._wsdl_url = wsdl_url
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 1.0))
        self._http = httpx.AsyncClient(timeout=self._timeout)
        self._client: zeep.AsyncClient | None = None
        self._loading = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    def _load(self) -> zeep.AsyncClient:
        with httpx.Client(timeout=self._timeout) as wsdl_http:
            transport = AsyncTransport(client=self._http, wsdl_client=wsdl_http)  # type: ignore[no-untyped-call]
            return zeep.AsyncClient(self._wsdl_url, transport=transport)  # type: ignore[no-untyped-call]

    async def _zeep(self) -> zeep.AsyncClient:
        async with self._loading:
            if self._client is None:
                self._client = await asyncio.to_thread(self._load)
            return self._client

    async def capture(self, order_id: str, amount: Money) -> PaymentResult:
        """One attempt; raises GatewayFailure or PaymentRefused."""
        try:
            client = await self._zeep()
            answer = await client.service.ProcessPayment(
                orderId=order_id, amount=amount.amount_minor, currency=amount.currency
            )
        except zeep.exceptions.Fault as exc:
            # faultcode "soap11env:Client.UnsupportedCurrency": the caller's fault, not the gateway's
            if str(exc.code).rpartition(":")[2].startswith("Client"):
                raise PaymentRefused(exc.message) from exc
            raise GatewayFailure("fault", f"SOAP fault {exc.code}: {exc.message}") from exc
        except httpx.TimeoutException as exc:
            raise GatewayFailure("timeout", f"SOAP timeout ({type(exc).__name__})") from exc
        except (httpx.HTTPError, zeep.exceptions.Error, OSError) as exc:
            raise GatewayFailure("transport", f"SOAP {type(exc).__name__}: {exc}") from exc
        return PaymentResult(str(answer.transactionId), answer.status == "APPROVED", answer.reason, self.name)
