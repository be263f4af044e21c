"""Error reporting: Sentry, only when SENTRY_DSN is set."""

from __future__ import annotations

import sentry_sdk

from app.core.config import Settings


def init_sentry(settings: Settings) -> bool:
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.app_env.value,
        release=settings.release,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # No user identity, cookies or bodies leave the process; frame variables could hold
        # passwords in flight, so they stay too.
        data_collection={
            "user_info": False,
            "http_bodies": [],
            "stack_frame_variables": False,
        },
    )
    return True
