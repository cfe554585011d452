"""EventPump: bounded batches per tick, order kept, stops cleanly on stop() and on destroy."""

from __future__ import annotations

import queue
import time
import tkinter as tk

import pytest

from ui.tk_support.event_pump import EventPump

pytestmark = pytest.mark.gui


class RecordingPump(EventPump):
    """Remembers how many messages each tick handled."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.per_tick = []

    def drain_once(self) -> int:
        count = super().drain_once()
        self.per_tick.append(count)
        return count


def spin(root: tk.Misc, seconds: float, until=lambda: False) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        root.update()
        time.sleep(0.005)


def test_drain_once_handles_at_most_max_batch_in_order(tk_root):
    source: "queue.Queue[int]" = queue.Queue()
    for number in range(120):
        source.put(number)
    seen = []
    pump = EventPump(tk_root, source, seen.append, max_batch=50)
    assert [pump.drain_once() for _ in range(4)] == [50, 50, 20, 0]
    assert seen == list(range(120))
    assert pump.handled == 120


def test_ticks_drain_a_bounded_batch_each(tk_root):
    source: "queue.Queue[int]" = queue.Queue()
    for number in range(120):
        source.put(number)
    seen = []
    pump = RecordingPump(tk_root, source, seen.append, interval_ms=5, max_batch=50)
    pump.start()
    spin(tk_root, 5.0, until=lambda: len(seen) == 120)
    pump.stop()
    assert seen == list(range(120))
    busy_ticks = [count for count in pump.per_tick if count]
    assert busy_ticks == [50, 50, 20]


def test_stop_cancels_the_timer_and_leaves_messages_queued(tk_root):
    source: "queue.Queue[str]" = queue.Queue()
    seen = []
    pump = EventPump(tk_root, source, seen.append, interval_ms=5)
    pump.start()
    source.put("before")
    spin(tk_root, 5.0, until=lambda: seen == ["before"])
    pending_id = pump._after_id
    assert pending_id is not None
    pump.stop()
    assert not pump.running
    assert pending_id not in tk_root.tk.splitlist(tk_root.tk.call("after", "info"))
    source.put("after")
    spin(tk_root, 0.2)
    assert seen == ["before"]
    assert source.get_nowait() == "after"


def test_pump_stops_by_itself_when_its_widget_is_destroyed(tk_root):
    frame = tk.Frame(tk_root)
    source: "queue.Queue[str]" = queue.Queue()
    seen = []
    pump = EventPump(frame, source, seen.append, interval_ms=5)
    pump.start()
    frame.destroy()  # Tk cancels nothing for us: the tick must notice
    source.put("late")
    spin(tk_root, 0.2)
    assert seen == []
    assert not pump.running


def test_a_failing_handler_does_not_stop_the_pump(tk_root, caplog):
    source: "queue.Queue[int]" = queue.Queue()
    seen = []

    def handler(number: int) -> None:
        if number == 1:
            raise RuntimeError("boom")
        seen.append(number)

    for number in range(3):
        source.put(number)
    pump = EventPump(tk_root, source, handler)
    assert pump.drain_once() == 3
    assert seen == [0, 2]
    assert "handling int failed" in caplog.text


def test_invalid_settings_are_refused(tk_root):
    with pytest.raises(ValueError):
        EventPump(tk_root, queue.Queue(), print, max_batch=0)
