"""The gRPC edge: the inventory service (`python -m serving_api.grpc`)."""
