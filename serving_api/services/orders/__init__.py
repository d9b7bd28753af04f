"""The order lifecycle, one use case a module: place (placement), pay (payment), cancel
(cancellation), fulfil (fulfilment); reads (queries), status changes (status) and the JSON an
order is shown as (views)."""

from serving_api.services.orders.cancellation import cancel
from serving_api.services.orders.fulfilment import fulfill
from serving_api.services.orders.payment import pay
from serving_api.services.orders.placement import place
from serving_api.services.orders.queries import get, owner_and_status

__all__ = ["cancel", "fulfill", "get", "owner_and_status", "pay", "place"]
