"""The API's monitor routes: list, read, create or replace, delete (config-file monitors are read-only here)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from .api_deps import _MISSING, _WRITE, Reader, Writer
from .config import MonitorSettings
from .monitoring import MonitorBook, MonitorConflict

router = APIRouter()


def _book(request: Request) -> MonitorBook:
    book: MonitorBook | None = getattr(request.app.state, "monitors", None)
    if book is None:
        raise HTTPException(404, "this service runs no monitors")
    return book


Book = Annotated[MonitorBook, Depends(_book)]


def _out(book: MonitorBook, name: str) -> dict[str, Any]:
    spec = book.get(name)
    assert spec is not None
    return {**spec.model_dump(mode="json"), "source": book.source(name)}


@router.get("/monitors", summary="Every monitor, from the config file and the API", responses=_MISSING)
async def list_monitors(book: Book, _: Reader) -> list[dict[str, Any]]:
    return [_out(book, m.name) for m in book]


@router.get("/monitors/{name}", summary="One monitor", responses=_MISSING)
async def get_monitor(name: str, book: Book, _: Reader) -> dict[str, Any]:
    if book.get(name) is None:
        raise HTTPException(404, f"no monitor {name}")
    return _out(book, name)


@router.put("/monitors/{name}", summary="Create or replace a monitor (runs from the next transaction; kept in "
            "the store). Script responses are refused here: they belong in the config file",
            responses={200: {"description": "replaced"}, 201: {"description": "created"},
                       422: {"description": "not a valid monitor (the message names the place)"}, **_WRITE})
async def put_monitor(name: str, book: Book, _: Writer,
                      body: Annotated[MonitorSettings, Body(description="a monitor, as in the config file")]
                      ) -> JSONResponse:
    try:
        created = book.put({**body.model_dump(mode="json", exclude_unset=True), "name": name})
    except MonitorConflict as err:
        raise HTTPException(409, str(err)) from None
    except ValueError as err:
        raise HTTPException(422, [{"loc": ["body"], "msg": str(err), "type": "value_error"}]) from None
    return JSONResponse(_out(book, name), status_code=201 if created[1] else 200)


@router.delete("/monitors/{name}", summary="Delete a monitor made through the API", status_code=204,
               responses=_WRITE)
async def delete_monitor(name: str, book: Book, _: Writer) -> Response:
    try:
        if not book.delete(name):
            raise HTTPException(404, f"no monitor {name}")
    except MonitorConflict as err:
        raise HTTPException(409, str(err)) from None
    return Response(status_code=204)
