"""Clients of the services the use cases call out to (the inventory gRPC service)."""
