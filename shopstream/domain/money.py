"""Money: integer minor units with an ISO 4217 currency. Never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

_CODE = re.compile(r"^[A-Z]{3}$")
# beyond any real amount, and far inside a signed 64-bit integer (Postgres bigint, Avro long)
LIMIT_MINOR = 10**15
# minor-unit exponents that are not 2 (ISO 4217); every other code has cents
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


_SEEN_CODES: set[str] = set()  # currency codes already checked (a dataflow makes Money per record)


@dataclass(frozen=True, order=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        amount, currency = self.amount_minor, self.currency
        if type(amount) is not int and (not isinstance(amount, int) or isinstance(amount, bool)):
            raise MoneyError(f"amount must be integer minor units, got {amount!r}")
        if not -LIMIT_MINOR < amount < LIMIT_MINOR:
            raise MoneyError(f"{amount} minor units is beyond the largest amount handled ({LIMIT_MINOR})")
        if currency not in _SEEN_CODES:
            if type(currency) is not str or not _CODE.match(currency):
                raise MoneyError(f"currency must be an ISO 4217 code like USD, got {currency!r}")
            if len(_SEEN_CODES) < 1_000:
                _SEEN_CODES.add(currency)

    @classmethod
    def parse(cls, amount: str | int | Decimal, currency: str) -> Money:
        """From a decimal amount in major units ("129.50" USD -> 12950); more decimals than the
        currency has is an error, not a rounding."""
        try:
            value = Decimal(str(amount))
        except InvalidOperation as exc:
            raise MoneyError(f"not an amount: {amount!r}") from exc
        if not value.is_finite():
            raise MoneyError(f"not an amount: {amount!r}")
        minor = value.scaleb(exponent(currency))
        if minor != minor.to_integral_value():
            raise MoneyError(f"{amount} has more decimals than {currency} allows ({exponent(currency)})")
        return cls(int(minor), currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.amount_minor * quantity, self.currency)

    def decimal(self) -> Decimal:
        return (
            Decimal(self.amount_minor)
            .scaleb(-exponent(self.currency))
            .quantize(Decimal(1).scaleb(-exponent(self.currency)), rounding=ROUND_HALF_EVEN)
        )

    def to_avro(self) -> dict[str, object]:
        return {"amountMinor": self.amount_minor, "currency": self.currency}

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        return f"{self.decimal()} {self.currency}"
