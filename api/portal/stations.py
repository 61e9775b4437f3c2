"""Workstations (ALLOWSYSTEMCONFIG, the permission IMPORTWORKSTATION needs in the API): which
device each station is, as IMPORTWORKSTATION stores it (STATIONNAME, DEVICEID, LOCATIONID).
A request naming a STATIONNAME (CALLSTART, BLACKOUTSTART, ...) is carried out on its device.

Mapping a station first removes every mapping holding its name or its device, as the manual's
IMPORTWORKSTATION does, so each station and each device is in one mapping at most; removing one
is the portal's own (the API has no request for it). Audited as ``station``.
"""

from __future__ import annotations

import re

from aiohttp import web

from recorder.api.portal.admin import post_form
from recorder.api.portal.context import PortalRequest
from recorder.store.audit import AUDIT_STATION
from recorder.store.directory import StationRow

# The manual's sizes: STATIONNAME char(50), DEVICEID char(15), LOCATIONID a signed 32-bit int.
MAX_STATION = 50
MAX_DEVICE = 15
_PRINTABLE = "[^\x00-\x1f\x7f]"
_STATION = re.compile(f"{_PRINTABLE}{{1,{MAX_STATION}}}")
_DEVICE = re.compile(f"{_PRINTABLE}{{1,{MAX_DEVICE}}}")


async def page(req: PortalRequest, status: int = 200, message: str = "") -> web.Response:
    stations = await req.ctx.run(req.ctx.store.directory.list_stations)
    return req.page("admin_stations.html", status=status, message=message, stations=stations,
                    max_station=MAX_STATION, max_device=MAX_DEVICE)


async def change(req: PortalRequest) -> web.StreamResponse:
    data = await req.request.post()
    action = str(data.get("action", ""))
    if action not in ("map", "remove"):
        raise web.HTTPBadRequest(text="this form maps or removes a station; nothing changed")
    form = await post_form(req, action)
    name = form.get("station").strip()
    if not _STATION.fullmatch(name):
        return await page(req, 400, f"A station name is 1 to {MAX_STATION} printable "
                                    "characters.")
    ctx = req.ctx
    directory = ctx.store.directory
    if action == "remove":

        def remove() -> str | None:
            gone = directory.delete_station(name)
            if gone is None:
                return f"No station is named {name}."
            ctx.audit(req.entry(AUDIT_STATION, gone.station_name,
                                f"removed (was device {gone.device_id})"))
            return None

        problem = await ctx.run(remove)
        if problem is not None:
            return await page(req, 409, problem)
        raise web.HTTPSeeOther("/admin/stations")
    device = form.get("device").strip()
    if not _DEVICE.fullmatch(device):
        return await page(req, 400, f"A DEVICEID is 1 to {MAX_DEVICE} printable characters.")
    try:
        location = int(form.get("location").strip() or "0")
        if not -(2**31) <= location < 2**31:
            raise ValueError(location)
    except ValueError:
        return await page(req, 400, "LOCATIONID is a whole number.")

    def store() -> None:
        stored = directory.replace_station(StationRow(name, device, location))
        ctx.audit(req.entry(AUDIT_STATION, stored.station_name,
                            f"device {stored.device_id}, location {stored.location_id}"))

    await ctx.run(store)
    raise web.HTTPSeeOther("/admin/stations")
