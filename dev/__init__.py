"""Not production code: the local stack manager with its `shopstream` CLI (`dev.stack`), and the
simulators that stand in for the world outside (`dev.simulators`: a storefront's customers, the
payment gateways, the shelf sensors). No deployable imports anything from here."""
