"""Service functions of the writers: each takes a connection in a transaction (or a pool) and
does one use case; entry points (REST routes, gRPC methods) only translate to and from them."""
