"""The payment port: the order service asks a gateway to capture an order's amount."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from shopstream.domain import Money, PaymentRefused, Unavailable


@dataclass(frozen=True)
class PaymentResult:
    payment_id: str
    approved: bool
    reason: str | None
    gateway: str


class RestPaymentGateway:
    name = "rest-sim"

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def capture(self, order_id: str, amount: Money) -> PaymentResult:
        """One request; raises Unavailable (no answer, or an error answer) or PaymentRefused."""
        try:
            response = await self._http.post(
                "/v1/payments",
                json={"orderId": order_id, "amountMinor": amount.amount_minor, "currency": amount.currency},
            )
        except httpx.HTTPError as exc:
            raise Unavailable(str(exc), code="payment-unavailable", title="Payment gateway unavailable") from exc
        if response.status_code == 422:
            raise PaymentRefused(response.json().get("error", response.text))
        if response.is_error:
            raise Unavailable(
                f"HTTP {response.status_code}", code="payment-gateway-error", title="Payment gateway error"
            )
        body = response.json()
        return PaymentResult(body["paymentId"], body["status"] == "APPROVED", body.get("reason"), self.name)
