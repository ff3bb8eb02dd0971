"""`make dev`'s command brings the fleet up, answers serviceHealth, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import SERVICE_HEALTH_QUERY

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_dev_command_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = dict(os.environ, NOVAMIND_KAFKA_BOOTSTRAP="", PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "novamind.devtools.fleet",
        "--free-ports",
        "--data-dir",
        str(tmp_path / "dev"),
        "--model-dir",
        str(tmp_path / "models"),
        "--pretrain-steps",
        "2",
        "--forecast-quick",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not any("Press Ctrl-C" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, "novamind-dev exited before the fleet was up:\n" + "".join(lines[-40:])
                lines.append(line)
        output = "".join(lines)
        assert "(embedded Tansu)" in output
        graphql_url = re.search(r"GraphQL \(GraphiQL\)\s+(\S+)", output)
        assert graphql_url is not None, output
        async with httpx.AsyncClient(timeout=5) as client:
            body = (await client.post(graphql_url.group(1), json={"query": SERVICE_HEALTH_QUERY})).json()
            ide = await client.get(graphql_url.group(1), headers={"accept": "text/html"})
        assert ide.status_code == 200 and "graphiql" in ide.text.lower()
        statuses = {e["service"]: e["status"] for e in body["data"]["serviceHealth"]}
        assert statuses == dict.fromkeys(
            ("pat", "forecasting", "correlation", "pharmacogenomics", "twin"), "SERVING"
        )

        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        async with asyncio.timeout(60):
            rest = (await proc.stdout.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert code == 0, rest[-3000:]
    stopped = re.search(r"^stopped: (.*)$", rest, re.MULTILINE)
    assert stopped is not None, rest[-3000:]
    assert all(part.endswith("=0") for part in stopped.group(1).split(", ")), stopped.group(1)
    assert '"level": "ERROR"' not in rest, rest[-3000:]
