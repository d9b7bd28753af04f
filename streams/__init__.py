"""Dataflows: pure per-record logic (in `shopstream.domain`) run by Quix Streams (default),
Bytewax and PyFlink (the latter from its own environment, `streams/flink/requirements.txt`)."""
