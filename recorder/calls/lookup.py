"""Which device a request means, and whose phone a device is.

A request names its device by DEVICEID, or by DEVICEALIAS, SYS_USER, CRM_USER, STATIONNAME or
CALLID: those are looked up first in the calls reported on each device (the manual: they "can
be used only if a device ID has already been associated" with them), then in the directory
(IMPORTWORKSTATION's stations, IMPORTAGENTPHONE's phones). The agent whose phone a device is
(AGENTID, and the user name schedules match) is kept in memory between directory changes, so a
CALLSTART does not wait for the database behind the recordings' commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from recorder.calls.requests import CallError, DeviceQuery, WouldBlock
from recorder.calls.table import CallTable
from recorder.errors import StoreError
from recorder.resultcodes import ResultCode
from recorder.store.directory import DirectoryStore, UserQuery, UserRow

logger = logging.getLogger(__name__)


class AgentCache:
    """Device -> (AGENTID, user name) of the agent whose phone it is, as last read.

    ``clear`` empties it and also keeps out any answer read before it was called: a lookup
    that read the database while a directory change was being made must not leave the old
    answer behind it. At most ``limit`` devices are kept (it starts afresh when full).
    """

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._lock = threading.Lock()
        self._agents: dict[str, tuple[str, str]] = {}
        self._generation = 0  # how many times it was cleared

    def peek(self, device_id: str) -> tuple[str, str] | None:
        """The kept answer for ``device_id``, None if there is none (nothing read)."""
        with self._lock:
            return self._agents.get(device_id)

    def get(self, device_id: str,
            read: Callable[[str], tuple[str, str] | None]) -> tuple[str, str]:
        """The kept answer for ``device_id``, else ``read(device_id)`` (kept unless None)."""
        with self._lock:
            found = self._agents.get(device_id)
            generation = self._generation
        if found is not None:
            return found
        answer = read(device_id)
        if answer is None:
            return "", ""
        with self._lock:
            if generation == self._generation:
                if len(self._agents) >= self._limit:
                    self._agents.clear()
                self._agents[device_id] = answer
        return answer

    def clear(self) -> None:
        with self._lock:
            self._agents.clear()
            self._generation += 1


class DeviceLookup:
    """Finds the device a request names, and the agent on a device; thread-safe."""

    def __init__(self, table: CallTable, directory: DirectoryStore) -> None:
        self._table = table
        self._directory = directory
        self._agents = AgentCache(table.devices.max_tracked)

    def resolve(self, query: DeviceQuery, *, inline: bool = False) -> str:
        """The DEVICEID ``query`` names; CallError (API_DEVICE_INVALID) if none. Takes the
        table's lock for the calls' part, and reads the directory without it (``inline``:
        WouldBlock instead of reading it)."""
        if not query:
            raise CallError(ResultCode.API_DEVICE_INVALID, "one of DEVICEID, DEVICEALIAS, "
                            "SYS_USER, CRM_USER or STATIONNAME is required")
        with self._table.lock:
            device_id = self._table.devices.resolve(query)
        if device_id is None and inline and (query.station or query.sys_user
                                             or query.crm_user):
            raise WouldBlock
        if device_id is None and query.station:
            device_id = self._station_device(query.station)
        if device_id is None and (query.sys_user or query.crm_user):
            device_id = self._agent_phone(query.sys_user, query.crm_user)
        if device_id is None:
            raise CallError(ResultCode.API_DEVICE_INVALID,
                            "Could not find a device matching given parameters")
        return device_id

    def agent_of(self, device_id: str, *, inline: bool = False) -> tuple[str, str]:
        """(AGENTID, user name) of the agent whose phone the device is; ("", "") if none.
        ``inline``: WouldBlock if that is not in memory (the directory would be read)."""
        if inline:
            found = self._agents.peek(device_id)
            if found is None:
                raise WouldBlock
            return found
        return self._agents.get(device_id, self._read_agent_of)

    def directory_changed(self) -> None:
        """Users or their phones may have changed (IMPORTUSER, IMPORTAGENTPHONE): the next
        CALLSTART on any device looks its agent up again."""
        self._agents.clear()

    def agent_devices(self, sys_user: str | None, crm_user: str | None) -> list[str]:
        """The devices an agent named by SYS_USER or CRM_USER is on: their phones in the
        directory, and devices whose calls carry the name."""
        found: list[str] = []
        if sys_user or crm_user:
            found += [phone for user in self._find_users(UserQuery(
                sys_user=sys_user or None, crm_user=crm_user or None)) for phone in user.phones]
        with self._table.lock:
            device_id = self._table.devices.resolve(DeviceQuery(sys_user=sys_user,
                                                                crm_user=crm_user))
        if device_id is not None and device_id not in found:
            found.append(device_id)
        return found

    def _read_agent_of(self, device_id: str) -> tuple[str, str] | None:
        """The database's answer for ``agent_of``; None (not kept) when it cannot be read."""
        try:
            users = self._directory.find_users(UserQuery(phone_id=device_id))
        except StoreError:
            logger.exception("cannot look up the agent of %s; recording without", device_id)
            return None
        if not users:
            return "", ""
        return str(users[0].user_id), users[0].username

    def _agent_phone(self, sys_user: str | None, crm_user: str | None) -> str | None:
        """The phone (IMPORTAGENTPHONE) of the one agent with that SYS_USER or CRM_USER."""
        users = self._find_users(UserQuery(sys_user=sys_user or None, crm_user=crm_user or None))
        phones = [phone for user in users for phone in user.phones]
        return phones[0] if phones else None

    def _find_users(self, query: UserQuery) -> list[UserRow]:
        try:
            return self._directory.find_users(query)
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc

    def _station_device(self, station: str) -> str | None:
        """The DEVICEID IMPORTWORKSTATION mapped ``station`` to (names compare without case)."""
        try:
            stations = self._directory.list_stations()
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc
        wanted = station.casefold()
        return next((s.device_id for s in stations if s.station_name.casefold() == wanted),
                    None)
