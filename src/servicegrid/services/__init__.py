"""The gRPC model services: one package each, servicers built on servicegrid.runtime."""
