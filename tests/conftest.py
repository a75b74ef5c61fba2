"""Fixtures shared by the test modules."""

import signal

import pytest
import torch


def pytest_configure(config):
    """Tests send Ctrl-C to the commands they start. A shell starts background jobs with Ctrl-C
    ignored, and an ignored signal stays ignored in every child: give this run the default
    handler, so that the children get Ctrl-C as from a terminal, however the run was started."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine extra threads make
    each small op wait for the others (a 0.2 s test took 11 s). Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def recorded_conversation(tmp_path_factory):
    """recorded_conversation(n): n RAVDESS clips joined by pauses, with a face video and a transcript
    (realtime_support.make_conversation), made once per test run for each n and shared: the test
    modules only read it."""
    from realtime_support import make_conversation
    from synth_speech import ravdess_clips

    made = {}

    def conversation(count: int) -> dict:
        if count not in made:
            made[count] = make_conversation(tmp_path_factory.mktemp(f"conversation{count}"), ravdess_clips(count))
        return made[count]

    return conversation
