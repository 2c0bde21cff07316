"""Under ``sds serve`` with several HTTP workers and no SDS_WEB_SECRET_KEY, every worker signs with the key made at
start: a form fetched from one worker is accepted by any other (a key per worker would refuse about half)."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.engine import Engine

from tests.conftest import make_token
from tests.functional.web.conftest import csrf
from tests.support.serving import sds_serve


def test_every_worker_accepts_the_session_another_signed(db: Engine, database_url: str, tmp_path: Path) -> None:
    token = make_token(db, "web-workers", admin=True)
    with sds_serve(database_url, tmp_path, ldap=False, ssp=False,
                   env={"SDS_WEB": "1", "SDS_HTTP_WORKERS": "2", "SDS_HTTP_THREADS": "1"}) as server:
        assert "SDS_WEB_SECRET_KEY" not in server.env
        for _ in range(12):  # a new connection for every request: each may land on either worker
            with httpx.Client(base_url=server.http_url, limits=httpx.Limits(max_keepalive_connections=0)) as http:
                form = http.get("/register")
                assert form.status_code == 200
                signed_in = http.post("/register", data={"csrf_token": csrf(form.text), "token": token})
                assert signed_in.status_code == 303, signed_in.text
                assert "Signed in with the API token of" in http.get("/register").text
