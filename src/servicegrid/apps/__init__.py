"""Seed 002's application services: users, questions and the API gateway.

Each is one process serving REST (FastAPI on uvicorn) and gRPC (``grpc.aio``) side
by side, over the same store and the same checks:

============  ==========================  ===========  ==========  ==================
service       ``servicegrid serve``       REST         gRPC        store
============  ==========================  ===========  ==========  ==================
users         ``users``                   :8001        :50061      SQLite/PostgreSQL
questions     ``questions``               :8002        :50062      SQLite/PostgreSQL
API gateway   ``api-gateway``             :8003        :50063      none (discovery)
============  ==========================  ===========  ==========  ==================

docs/apps.md describes their APIs; the clients are in :mod:`servicegrid.clients`.
"""
