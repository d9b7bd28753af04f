"""A simulated legacy payment gateway: a real SOAP 1.1 service (spyne) with its WSDL at `/soap?wsdl`,
the payment adapter's primary path. The same deterministic rules as the REST simulator
(`dev.simulators.payment_gateway.decide`): minor units ending in 13 are declined ("card declined"), over
5,000,000 minor units too ("limit exceeded"); a currency other than USD, EUR, GBP, JPY is a Client
fault; the same orderId again gets the first answer.

So tests and benchmarks can provoke every outcome, it can be told how to behave, over plain HTTP:
  POST /admin/mode {"mode": "normal"|"slow"|"fail"|"decline", "delayMs": 0, "times": null}
    slow: answer after delayMs (the capture still happens); fail: a Server fault (HTTP 500);
    decline: every payment declined ("declined by the legacy gateway"), not remembered;
    times: the mode holds for that many requests, then it is back to normal.
  GET /admin/mode -> the mode and `requests`, the ProcessPayment requests served so far.
`python -m dev.simulators.legacy_gateway` (threaded WSGI server; port
SHOPSTREAM_LEGACY_PAYMENT_GATEWAY__LISTEN__PORT)."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dev.simulators.payment_gateway import CURRENCIES, PaymentRequest, decide
from dev.simulators.settings import LegacyPaymentGatewaySettings

with warnings.catch_warnings():  # spyne 2.14 imports `cgi` and has an old-style namespace package
    warnings.simplefilter("ignore")
    from spyne import Application, ComplexModel, Fault, Integer64, ServiceBase, Unicode, rpc  # type: ignore[import-untyped]
    from spyne.protocol.soap import Soap11  # type: ignore[import-untyped]
    from spyne.server.wsgi import WsgiApplication  # type: ignore[import-untyped]

NAMESPACE = "urn:shopstream:legacy-payments:v1"
MODES = ("normal", "slow", "fail", "decline")

StartResponse = Callable[..., Any]


@dataclass
class Behaviour:
    """How the gateway answers now; changed by POST /admin/mode."""

    mode: str = "normal"
    delayMs: int = 0  # noqa: N815 - the admin endpoint's JSON names
    times: int | None = None
    requests: int = 0


class PaymentResult(ComplexModel):  # type: ignore[misc]
    __namespace__ = NAMESPACE
    orderId = Unicode  # noqa: N815 - the WSDL's names
    status = Unicode  # APPROVED | DECLINED
    transactionId = Unicode  # noqa: N815
    reason = Unicode


class Gateway:
    """The gateway's state: its behaviour and the answers it gave, shared by the server's threads."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.answers: dict[str, PaymentResult] = {}
        self.lock = threading.Lock()

    def set_mode(self, mode: str, delay_ms: int = 0, times: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self.lock:
            requests = self.behaviour.requests
            self.behaviour = Behaviour(mode, max(0, delay_ms), times, requests)

    def _next_mode(self) -> tuple[str, int]:
        with self.lock:
            b = self.behaviour
            b.requests += 1
            mode, delay = b.mode, b.delayMs
            if b.times is not None:
                b.times -= 1
                if b.times <= 0:
                    b.mode, b.delayMs, b.times = "normal", 0, None
            return mode, delay

    def process(self, order_id: str, amount: int, currency: str) -> PaymentResult:
        mode, delay_ms = self._next_mode()
        if mode == "slow":
            time.sleep(delay_ms / 1000)
        if mode == "fail":
            raise Fault("Server.Unavailable", "legacy gateway unavailable (simulated failure)")
        if currency not in CURRENCIES:
            raise Fault("Client.UnsupportedCurrency", f"currency {currency} not supported")
        if amount < 0:
            raise Fault("Client.InvalidAmount", "amount must not be negative")
        if mode == "decline":
            return PaymentResult(
                orderId=order_id, status="DECLINED", transactionId=_txn(), reason="declined by the legacy gateway"
            )
        with self.lock:
            if order_id not in self.answers:
                decision = decide(PaymentRequest(orderId=order_id, amountMinor=amount, currency=currency))
                self.answers[order_id] = PaymentResult(
                    orderId=order_id, status=decision["status"], transactionId=_txn(), reason=decision["reason"]
                )
            return self.answers[order_id]


def _txn() -> str:
    return f"LEG-{uuid.uuid4().hex[:12]}"


def soap_application(gateway: Gateway) -> WsgiApplication:
    class LegacyPaymentService(ServiceBase):  # type: ignore[misc]
        @rpc(  # type: ignore[untyped-decorator]
            Unicode(min_occurs=1, nillable=False, max_len=100),
            Integer64(min_occurs=1, nillable=False, doc="amount in minor units of the currency"),
            Unicode(min_occurs=1, nillable=False, pattern="[A-Z]{3}"),
            _returns=PaymentResult,
        )
        def ProcessPayment(ctx: Any, orderId: str, amount: int, currency: str) -> PaymentResult:  # noqa: N802, N803
            return gateway.process(orderId, amount, currency)

    app = Application(
        [LegacyPaymentService],
        tns=NAMESPACE,
        name="LegacyPaymentGateway",
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )
    return WsgiApplication(app)


def create_app(gateway: Gateway | None = None) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app: SOAP at /soap (WSDL at /soap?wsdl), /admin/mode, /health."""
    gateway = gateway or Gateway()
    soap = soap_application(gateway)

    def reply(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path == "/soap":
            return soap(environ, start_response)  # type: ignore[no-any-return]
        if path == "/health":
            return reply(start_response, "200 OK", {"status": "ok"})
        if path == "/admin/mode" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                body = json.loads(environ["wsgi.input"].read(length) or b"{}")
                gateway.set_mode(str(body.get("mode", "normal")), int(body.get("delayMs", 0)), body.get("times"))
            except (ValueError, TypeError) as exc:
                return reply(start_response, "422 Unprocessable Entity", {"error": str(exc)})
        if path == "/admin/mode" and method in ("GET", "POST"):
            with gateway.lock:
                return reply(start_response, "200 OK", asdict(gateway.behaviour))
        return reply(start_response, "404 Not Found", {"error": f"no {method} {path}"})

    return app


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow answer must not hold the health probe or the admin endpoint


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def main() -> None:
    listen = LegacyPaymentGatewaySettings().listen
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("spyne.application").setLevel(logging.CRITICAL)  # a simulated fault is no error here
    with make_server(
        listen.host,
        listen.port,
        create_app(),
        server_class=ThreadingServer,
        handler_class=QuietHandler,
    ) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
