"""The fault run's Python replica app (copied into the stand-in as app/fault_main.py;
KOTTE_APP=app.fault_main:app): the stand-in of Kotte's app
(bindings/python/tests/standin_kotte.py) plus Kotte's GET /connections/{id},
which the stand-in lacks, so that the run can read a saved connection back
with its username and password through the drop-in's ConnectionStorage."""

from fastapi import Depends, HTTPException

import app.core.connection_storage as _storage
import app.main as _main
from app.core.auth import get_session

app = _main.app


@app.get("/api/v1/connections/{connection_id}")
async def get_connection(connection_id: str, session: dict = Depends(get_session)):
    found = _storage.connection_storage.get_connection(session["user_id"], connection_id)
    if found is None:
        raise HTTPException(status_code=404, detail="CONNECTION_NOT_FOUND")
    return found
