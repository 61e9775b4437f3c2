"""Workstation-to-device mappings: IMPORTWORKSTATION writes them, STATIONS lists them."""

from __future__ import annotations

import logging

from recorder.api.context import ApiContext
from recorder.api.handlers.common import required, required_int
from recorder.api.protocol.params import Params
from recorder.api.request import ApiResult, Node
from recorder.resultcodes import ResultCode
from recorder.store.directory import StationRow

logger = logging.getLogger(__name__)


def import_workstation(ctx: ApiContext, params: Params) -> ApiResult:
    device_id = required(params, "DEVICEID")
    station_name = required(params, "STATIONNAME")
    location_id = required_int(params, "LOCATIONID")
    # The store first deletes every mapping holding this DEVICEID or STATIONNAME, so each
    # station and each device appears in at most one.
    stored = ctx.store.directory.replace_station(StationRow(station_name, device_id, location_id))
    logger.info("IMPORTWORKSTATION: %s -> device %s (location %d)", stored.station_name,
                stored.device_id, stored.location_id)
    # The manual: STATIONNAME as sent, DEVICEID as stored.
    body: list[Node] = [("DEVICEID", stored.device_id), ("STATIONNAME", station_name)]
    return ApiResult(ResultCode.API_OK, "API_OK", body)


def stations(ctx: ApiContext, params: Params) -> ApiResult:
    rows = ctx.store.directory.list_stations()
    body: list[Node] = [
        ("COUNT", str(len(rows))),
        ("STATIONS", [("STATION", [("STATIONNAME", s.station_name), ("DEVICEID", s.device_id)])
                      for s in rows]),
    ]
    return ApiResult(ResultCode.API_OK, "API_OK", body)
