"""The storefront's GraphQL read API."""

from serving_api.graphql.schema import schema, sdl

__all__ = ["schema", "sdl"]
