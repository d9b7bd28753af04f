"""`python -m serving_api.grpc`: the inventory gRPC service until stopped."""

from serving_api.grpc.server import main

main()
