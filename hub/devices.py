"""The mobile app's devices: push tokens registered by verified customers."""

from __future__ import annotations

from sqlalchemy import delete, select

from hub.clock import utcnow
from hub.domain import PushDevice
from hub.storage.database import Database
from hub.storage.models import AppDevice


class DeviceDirectory:
    """Register, list and forget the app's push tokens (implements `channels.base.AppDevices`)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def register(self, device: PushDevice) -> None:
        """Remember the device for its customer; a token seen before moves to this customer."""
        now = utcnow()
        async with self.database.write() as session:
            row = await session.scalar(
                select(AppDevice).where(AppDevice.push_token == device.push_token)
            )
            if row is None:
                session.add(
                    AppDevice(
                        customer_ref=device.customer_ref,
                        platform=device.platform,
                        push_token=device.push_token,
                        created_at=now,
                        last_seen_at=now,
                    )
                )
                return
            # One phone, a new login: notifications follow whoever is logged in now.
            row.customer_ref, row.platform, row.last_seen_at = (
                device.customer_ref,
                device.platform,
                now,
            )

    async def devices_of(self, customer_ref: str) -> list[PushDevice]:
        async with self.database.read() as session:
            rows = await session.scalars(
                select(AppDevice)
                .where(AppDevice.customer_ref == customer_ref)
                .order_by(AppDevice.id)
            )
            return [PushDevice(r.customer_ref, r.platform, r.push_token) for r in rows]

    async def forget(self, push_token: str) -> None:
        """Drop a token the push service no longer knows (app uninstalled, token rotated)."""
        async with self.database.write() as session:
            await session.execute(delete(AppDevice).where(AppDevice.push_token == push_token))
