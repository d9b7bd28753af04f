"""A simulated REST payment gateway (the seed's fallback path; the SOAP primary comes later).
A real local HTTP service with deterministic rules, so every outcome can be provoked:
  - an amount whose minor units end in 13 is declined ("card declined");
  - an amount over 5,000,000 minor units is declined ("limit exceeded");
  - a currency other than USD, EUR, GBP, JPY is a 422;
  - everything else is approved. The same orderId again returns the first answer.
`python -m dev.simulators.payment_gateway`."""

from __future__ import annotations

import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dev.simulators.settings import PaymentGatewaySettings

CURRENCIES = {"USD", "EUR", "GBP", "JPY"}
LIMIT_MINOR = 5_000_000


class PaymentRequest(BaseModel):
    orderId: str = Field(min_length=1, max_length=100)  # noqa: N815 - the gateway's JSON names
    amountMinor: int = Field(ge=0)  # noqa: N815
    currency: str = Field(pattern=r"^[A-Z]{3}$")


def decide(request: PaymentRequest) -> dict[str, Any]:
    if request.amountMinor % 100 == 13:
        return {"status": "DECLINED", "reason": "card declined"}
    if request.amountMinor > LIMIT_MINOR:
        return {"status": "DECLINED", "reason": "limit exceeded"}
    return {"status": "APPROVED", "reason": None}


def create_app() -> FastAPI:
    app = FastAPI(title="payment gateway (simulated)")
    answers: dict[str, dict[str, Any]] = {}

    @app.post("/v1/payments")
    async def pay(request: PaymentRequest) -> JSONResponse:
        if request.currency not in CURRENCIES:
            return JSONResponse({"error": f"currency {request.currency} not supported"}, status_code=422)
        if request.orderId not in answers:
            answers[request.orderId] = {
                "paymentId": f"PAY-{uuid.uuid4().hex[:12]}",
                "orderId": request.orderId,
                "amountMinor": request.amountMinor,
                "currency": request.currency,
                **decide(request),
            }
        return JSONResponse(answers[request.orderId], status_code=200)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    listen = PaymentGatewaySettings().listen
    uvicorn.run(create_app(), host=listen.host, port=listen.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
