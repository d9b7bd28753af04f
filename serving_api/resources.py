"""The API process's shared resources (pool, serde, clients, cache), built once at start and
used by every edge of it: REST routes, the WebSocket channel and the GraphQL loaders."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from serving_api.adapters.inventory import InventoryClient
from serving_api.adapters.orders_view import CustomerOrders
from serving_api.adapters.product_search import ProductSearch
from serving_api.auth.policy import Authorizer
from serving_api.auth.tokens import Authenticator
from serving_api.payments import PaymentAdapter
from serving_api.settings import ApiSettings
from shopstream.serde import AvroSerde


@dataclass
class Resources:
    settings: ApiSettings
    pool: asyncpg.Pool
    serde: AvroSerde
    stock: InventoryClient
    authn: Authenticator
    authz: Authorizer
    payments: PaymentAdapter
    cache: aioredis.Redis
    orders_view: CustomerOrders  # Cassandra's orders_by_customer
    search: ProductSearch  # OpenSearch's products
