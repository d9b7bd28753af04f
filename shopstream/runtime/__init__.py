"""Process plumbing every deployable shares: Postgres pool and unit of work, the transactional
outbox writer and the request context that feeds it, telemetry (JSON logs with correlation ids,
traces), the one dead-letter writer, the shared settings models and the repository's paths. It
imports only the shared kernel (`shopstream.domain`, `shopstream.serde`) and third-party
libraries, never a deployable."""
