"""The `shopstream` command: the local stack (`up`, `down`, `status`, `logs`, `setup`) and the
operators' commands over each deployable (`schemas`, `streams`, `olap`, `ingest`, `simulate`)."""
