"""The HTTP API under /api/v1. Importing the route modules fills `API`'s route table."""

from server.api.routing import Api

API = Api()
PREFIX = "/api/v1"


def load_routes() -> Api:
    from server.api import (  # noqa: F401
        admission,
        agenda,
        audit,
        breakouts,
        invitations,
        meta,
        moderation,
        participants,
        playback,
        recordings,
        records,
        workshops,
    )

    return API
