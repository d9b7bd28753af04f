"""The serving API: thin FastAPI (REST) and gRPC entry points that write Postgres (+ outbox) only.

Arrives with the OLTP writers issue; see README "Layout"."""
