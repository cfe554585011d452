"""Tests for app/run/command_inbox.py: the trainer's queue of commands, interrupted by a stop."""

import logging
import threading
import time

import pytest

from app.run import messages as msg
from app.run.command_inbox import CommandInbox, RunStopped


def test_only_trainer_commands_are_accepted():
    inbox = CommandInbox(threading.Event())
    with pytest.raises(TypeError, match="not a trainer command"):
        inbox.put("commit")
    with pytest.raises(TypeError):
        inbox.put(msg.StateChanged)  # an event type, not a command


def test_wait_returns_the_next_accepted_command_and_drops_the_others(caplog):
    inbox = CommandInbox(threading.Event())
    inbox.put(msg.Commit())
    inbox.put(msg.SkipFeedback())
    inbox.put(msg.StartFinetune(("a.png",)))
    with caplog.at_level(logging.WARNING, logger="app.run.command_inbox"):
        command = inbox.wait((msg.StartFinetune, msg.SkipFeedback))
    assert command == msg.SkipFeedback()
    assert "ignoring Commit while waiting for ['StartFinetune', 'SkipFeedback']" in caplog.text
    assert inbox.wait((msg.StartFinetune,)) == msg.StartFinetune(("a.png",))


def test_a_command_from_another_thread_ends_the_wait():
    inbox = CommandInbox(threading.Event())
    threading.Timer(0.05, inbox.put, (msg.Reject(),)).start()
    assert inbox.wait((msg.Commit, msg.Reject)) == msg.Reject()


def test_stop_ends_a_wait_even_with_commands_queued():
    stop = threading.Event()
    inbox = CommandInbox(stop)
    inbox.put(msg.Commit())
    stop.set()
    with pytest.raises(RunStopped):
        inbox.wait((msg.Commit,))


def test_stop_from_another_thread_ends_a_wait_within_a_poll():
    stop = threading.Event()
    inbox = CommandInbox(stop)
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    with pytest.raises(RunStopped):
        inbox.wait((msg.Commit,))
    assert time.monotonic() - started < 2.0
