"""Simulators of what lies outside the platform, for the local stack, the tests and the bench:
`storefront` (customers placing orders), `payment_gateway` (the REST gateway), `legacy_gateway`
(the SOAP gateway), `devices` (shelf sensors and restock scanners over MQTT)."""
