"""The gRPC contracts: ``*.proto`` sources and the code generated from them.

``from servicegrid.proto import embedding_service_pb2, embedding_service_pb2_grpc``
as in seed 000. All messages live in the protobuf package ``servicegrid.v1``;
``common.proto`` holds what the services share (health, stats, processing
metadata). Regenerate with ``make protos``; ``make check`` fails when the
generated code is stale.
"""
