"""The users service (REST :8001, gRPC :50061): users with unique usernames and emails.

:class:`UserStore` keeps them (SQLite or PostgreSQL); :func:`create_app` and
:class:`UserServicer` serve the same store over REST and gRPC, and
:func:`run_users_service` runs both (``servicegrid serve users``).
"""

from servicegrid.apps.users.rest import create_app
from servicegrid.apps.users.schemas import User, UserCreate, UserUpdate
from servicegrid.apps.users.server import run_users_service
from servicegrid.apps.users.servicer import UserServicer
from servicegrid.apps.users.store import SAMPLE_USERS, UserStore

__all__ = [
    "SAMPLE_USERS",
    "User",
    "UserCreate",
    "UserServicer",
    "UserStore",
    "UserUpdate",
    "create_app",
    "run_users_service",
]
