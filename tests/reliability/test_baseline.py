"""The baseline: well-behaved load over every API and transport. Every other
scenario is this plus a fault, so this row is what "ok" looks like."""

from __future__ import annotations

import pytest

from .harness import (
    API,
    APIS,
    ECHO,
    TRANSPORTS,
    UDP_IN_FLIGHT,
    Form,
    Transport,
    load,
    running,
)
from .report import Row


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("api", APIS)
async def test_steady_load(api: API, transport: Transport, row: Row, form: Form) -> None:
    async with running(api, transport, ECHO) as srv:
        tally = await load(srv, form.clients)
        await srv.assert_serving()
    # Datagrams have no connection: one the kernel dropped under load shows
    # up here as lost, so loopback at this load must drop none.
    assert tally.served == form.clients, tally
    row.record(
        load=f"{form.clients} requests at once"
        + (f" (at most {UDP_IN_FLIGHT} in flight)" if transport == "udp" else ""),
        faults="none",
        result=str(tally),
        lost=tally.lost,
    )
