"""The shared domain of shopstream: the contracts and rules that the API, the gRPC servicer, the
dataflows and the replay all use. Imports only the standard library (it is installed into the
PyFlink environment too)."""

from shopstream.domain.events import EVENT_TYPES, EventType, event_type

__all__ = ["EVENT_TYPES", "EventType", "event_type"]
