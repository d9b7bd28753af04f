"""Partner webhooks (partner-webhook-dispatcher): subscriptions, the Kafka → RabbitMQ fan-out and
the dispatcher with its retry schedule (RabbitMQ delay queues, then a DLQ and
webhook.delivery.failed through the outbox)."""

from webhooks.deliveries import SUBSCRIBABLE, Delivery, delivery_id, webhook_body
from webhooks.schedule import RetrySchedule, delay_name
from webhooks.settings import SEED_SCHEDULE, WebhookDispatcherSettings, WebhookFanoutSettings, WebhookSettings
from webhooks.signature import sign, verify

__all__ = [
    "SEED_SCHEDULE",
    "SUBSCRIBABLE",
    "Delivery",
    "RetrySchedule",
    "WebhookDispatcherSettings",
    "WebhookFanoutSettings",
    "WebhookSettings",
    "delay_name",
    "delivery_id",
    "sign",
    "verify",
    "webhook_body",
]
