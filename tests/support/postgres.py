"""A throwaway PostgreSQL server for tests: its own cluster in a temporary directory.

``with PostgresServer() as server: url = server.create_database().asyncpg_url``. One server
holds many databases, so tests stay isolated while sharing one server process. The binaries
come from ``PATH`` or ``/usr/lib/postgresql/*/bin`` (``tools/ensure_postgres.sh`` installs
them). PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.support.faulty_server import free_port

__all__ = ["Database", "PostgresNotFound", "PostgresServer", "find_bin_dir"]

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries (``initdb`` and ``postgres``) on this machine."""


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    parts = bin_dir.parent.name.split(".")
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else (0,)


def find_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``postgres``: from ``PATH``, else the newest Debian one.

    Raises :class:`PostgresNotFound` when there is none.
    """
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    candidates.extend(sorted(DEBIAN_ROOT.glob("*/bin"), key=_version_key, reverse=True))
    for bin_dir in candidates:
        if all(os.access(bin_dir / name, os.X_OK) for name in ("initdb", "postgres")):
            return bin_dir
    raise PostgresNotFound(
        f"no PostgreSQL server binaries (initdb, postgres) on PATH or in {DEBIAN_ROOT}/*/bin; "
        "run `bash tools/ensure_postgres.sh` as root to install them"
    )


@dataclass(frozen=True, slots=True)
class Database:
    """One database on a running server, with its URL for each driver."""

    host: str
    port: int
    user: str
    name: str

    def url_for(self, drivername: str) -> str:
        """``drivername://user@host:port/name``, e.g. for ``postgresql+asyncpg``."""
        return f"{drivername}://{self.user}@{self.host}:{self.port}/{self.name}"

    @property
    def asyncpg_url(self) -> str:
        """The SQLAlchemy URL through asyncpg: ``postgresql+asyncpg://...``."""
        return self.url_for("postgresql+asyncpg")

    @property
    def psycopg_url(self) -> str:
        """The SQLAlchemy URL through psycopg 3: ``postgresql+psycopg://...``."""
        return self.url_for("postgresql+psycopg")

    @property
    def url(self) -> str:
        """The plain libpq URL, ``postgresql://...`` (psycopg 3 and DBOS take this form)."""
        return self.url_for("postgresql")


def _system_user(name: str) -> pwd.struct_passwd:
    """The system user ``name``, created first (as a system user with its own group) if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", name],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(name)


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 at a free port.

    ``start()`` runs ``initdb`` (trust auth, UTF8, C locale) and the server with ``fsync=off``;
    ``stop()`` shuts it down and removes the directory. The unix socket lives in that directory.
    Without ``port``, a free one is picked just before the server starts; ``startup_timeout`` is
    in seconds.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else find_bin_dir()
        self._fixed_port = port
        self.port = port if port is not None else 0
        self.startup_timeout = startup_timeout
        self.base_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as = _system_user(SYSTEM_USER) if os.geteuid() == 0 else None

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "run"

    @property
    def log_path(self) -> Path:
        return self._base() / "postgres.log"

    def database(self, name: str = "postgres") -> Database:
        """The database ``name`` on this server (not created; ``postgres`` always exists)."""
        return Database(host=self.host, port=self.port, user=SUPERUSER, name=name)

    def start(self) -> PostgresServer:
        """Create the cluster and start the server; returns once it accepts connections."""
        if self._process is not None:
            raise RuntimeError("the PostgreSQL server is already running")
        self.base_dir = Path(tempfile.mkdtemp(prefix="servicegrid-pg-"))
        try:
            self.socket_dir.mkdir()
            if self._run_as is not None:
                for path in (self.base_dir, self.socket_dir):
                    os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
            self._initdb()
            self.port = self._fixed_port if self._fixed_port is not None else free_port()
            self._launch()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Shut the server down (fast shutdown, then kill) and remove its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def create_database(self, prefix: str = "test") -> Database:
        """A new, empty database with a unique name starting with ``prefix``."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, ending any connections still open to it."""
        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def execute(self, statement: str | sql.SQL | sql.Composed) -> None:
        """Run one statement on the ``postgres`` database, outside a transaction."""
        with psycopg.connect(self.database().url, autocommit=True) as connection:
            connection.execute(statement)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _base(self) -> Path:
        if self.base_dir is None:
            raise RuntimeError("the PostgreSQL server is not started")
        return self.base_dir

    def _as_owner(self) -> dict[str, Any]:
        """``subprocess`` options that run a command in the cluster's folder and locale."""
        return {"cwd": self._base(), "env": {**os.environ, "LC_ALL": "C"}}

    def _owned(self, command: list[str]) -> list[str]:
        """``command`` run as the cluster's owner: through ``setpriv`` when we are root.

        Not through ``subprocess``' own ``user=``: changing user makes Python fork()
        instead of vfork(), and then the fork handlers of a gRPC already running in
        this process run in the child, which can break the server's start.
        """
        if self._run_as is None:
            return command
        ids = [f"--reuid={self._run_as.pw_uid}", f"--regid={self._run_as.pw_gid}"]
        return ["setpriv", *ids, "--clear-groups", "--", *command]

    def _initdb(self) -> None:
        command = [
            str(self.bin_dir / "initdb"),
            f"--pgdata={self.data_dir}",
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        done = subprocess.run(
            self._owned(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **self._as_owner(),
        )
        if done.returncode != 0:
            output = done.stdout.decode(errors="replace")
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{output}")

    def _launch(self) -> None:
        command = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self._owned(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._as_owner(),
            )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited while starting:\n{self._log_tail()}")
            try:
                psycopg.connect(self.database().url, connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL did not accept connections within "
                        f"{self.startup_timeout:g} s: {exc}\n{self._log_tail()}"
                    ) from exc
            time.sleep(0.05)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])
