"""The web-ish side: enqueue orders, return at once, look at them later from anywhere."""

from __future__ import annotations

import asyncio

from shop import process_order, wf


async def main() -> None:
    async with wf:
        handles = [await process_order.enqueue(order_id=str(n), cents=100 * n) for n in range(1, 6)]
        # An urgent order jumps the queue: lower priority values run first.
        handles.append(await process_order.enqueue(order_id="vip", cents=999, priority=-1))
        print("enqueued", ", ".join(h.run_id for h in handles))

        # Later, in this or any other process: a handle by run id.
        vip = wf.handle("order-vip")
        result = await vip.result(timeout=60)
        print("order-vip", result["payment"], result["parcel"])
        for handle in handles[:-1]:
            parcel = (await handle.result(timeout=60))["parcel"]
            print(handle.run_id, await handle.status(), parcel)


if __name__ == "__main__":
    asyncio.run(main())
