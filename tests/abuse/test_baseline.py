"""The control: the legitimate pair with no attacker, on the same machine at the same time.

If this fails, the machine (not an attacker) is what puts the chat over the bar, and the
other figures must be read against it.
"""

from __future__ import annotations

import asyncio

from tests.abuse.conftest import ALSO_ON_POSTGRES, Figures, LegitChat


@ALSO_ON_POSTGRES
async def test_no_attack(chat: LegitChat, figures: Figures) -> None:
    async with chat.during():
        await asyncio.sleep(3)  # the pair chats on its own for as long as an attack lasts
    chat.assert_unharmed()
