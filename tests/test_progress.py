"""The side-by-side board: workers' training progress reaches the parent through a queue."""

import multiprocessing
import time

from emf_bench import progress


def test_worker_progress_reaches_the_board_weighted_by_each_probes_estimate(monkeypatch):
    queue = multiprocessing.get_context("spawn").Queue()
    monkeypatch.setitem(progress._FORWARD, "queue", None)
    progress.forward_to(queue)
    with progress.forwarding("class-label meanflow"):
        progress.StepProgress("training class-label meanflow").update(50, 0.5, 0.1, 200,
                                                                      "meanflow")
    progress.forwarded("constant meanflow", 1.0, "evaluating")
    progress.forwarded(None, 0.3, "outside any probe: not sent")
    monkeypatch.setattr(progress, "progress_enabled", lambda: True)
    names = ["class-label meanflow", "constant meanflow"]
    with progress.ProbeBoard(names, [(80.0, 20.0), (30.0, 10.0)]) as board:
        deadline = time.monotonic() + 30
        while not all(board.done.values()) and time.monotonic() < deadline:
            board.drain(queue)
            time.sleep(0.05)
        assert board.done == {"class-label meanflow": 0.5 * 80 / 100,
                              "constant meanflow": 30 / 40}  # trained, not yet evaluated
        assert board._bar.tasks[0].completed == 0.4 * 100 + 0.75 * 40  # seconds of work done
        board.finish("constant meanflow")
        assert board.done["constant meanflow"] == 1.0
        assert "meanflow loss 0.1 200 img/s" in board._bar.tasks[1].fields["info"]
    board.drain(queue)  # nothing else was sent
    assert queue.empty()
