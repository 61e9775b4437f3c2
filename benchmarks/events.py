"""Event-bus benchmark: what publishing an event costs the thread that publishes it.

    .venv/bin/python benchmarks/events.py [--events 20000] [--subscribers 0,1,10,100]

The scheduler publishes from the thread that handles a call, so a publish must stay cheap
however many clients subscribe, and a client that stopped reading must not make it dearer.
For each subscriber count the benchmark starts that many subscriptions read by coroutines on
an asyncio loop in a thread of its own (as the API server's connections are), plus one that is
never read (a stalled client), publishes ``--events`` CALLSTART events from the main thread in
bursts of 200, each burst delivered before the next, and reports:

- the publisher's cost per event: CPU time of the publishing thread
  (time.thread_time) divided by the number of events;
- the delivery rate: events delivered to the reading subscribers per wall-clock second, from
  the first publish until the last reader has had the last event (readers and publisher share
  the machine's CPUs);
- whether the stalled subscriber was dropped and every reader received every event.

The machine has 2 cores shared with other work, so the wall-clock rate is indicative only; the
per-event CPU cost is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time

from recorder.events.bus import EventBus, Subscription
from recorder.events.types import make_event

QUEUE = 1000
BURST = 200


def run(subscribers: int, events: int) -> dict[str, float]:
    bus = EventBus(QUEUE)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    readers = [bus.subscribe({"CALL"}, name=f"reader {i}", loop=loop) for i in range(subscribers)]
    stalled = bus.subscribe({"CALL"}, name="stalled", loop=loop)
    received = [0] * subscribers
    done = threading.Event()
    remaining = [subscribers]
    lock = threading.Lock()

    async def read(index: int, subscription: Subscription) -> None:
        while await subscription.get() is not None:
            received[index] += 1
            if received[index] == events:
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()
                return

    for i, subscription in enumerate(readers):
        asyncio.run_coroutine_threadsafe(read(i, subscription), loop)
    if not subscribers:
        done.set()
    batch = [make_event("CALLSTART", {"DEVICEID": str(1000 + n % 100), "ANI": "6145551212"})
             for n in range(100)]
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for n in range(events):
        bus.publish(batch[n % 100])
        if n % BURST == BURST - 1 and subscribers:
            # Bursts of BURST events, each let through before the next (a recorder publishes
            # a handful per call); waiting costs the publishing thread no CPU time.
            deadline = time.monotonic() + 30
            while min(received) <= n and time.monotonic() < deadline:
                time.sleep(0.0002)
    cpu = time.thread_time() - cpu0
    finished = done.wait(120)
    wall = time.perf_counter() - wall0
    bus.close()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
    return {
        "publish_us": cpu / events * 1e6,
        "delivered_per_s": events * subscribers / wall if subscribers else 0.0,
        "stalled_dropped": float(stalled.dropped),
        "all_delivered": float(finished and all(r == events for r in received)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--subscribers", default="0,1,10,100")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the stalled subscriber's drop is in the table instead
    counts = [int(c) for c in args.subscribers.split(",")]
    print(f"{args.events} events, queue {QUEUE} per subscriber, plus one stalled subscriber")
    print(f"{'readers':>8} {'publish µs/event':>17} {'deliveries/s':>13} {'stalled dropped':>16} "
          f"{'all delivered':>14}")
    for count in counts:
        result = run(count, args.events)
        print(f"{count:>8} {result['publish_us']:>17.2f} {result['delivered_per_s']:>13,.0f} "
              f"{'yes' if result['stalled_dropped'] else 'no':>16} "
              f"{'yes' if result['all_delivered'] else 'NO':>14}")


if __name__ == "__main__":
    main()
