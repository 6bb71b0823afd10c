"""The progress line people read: count, rate, time left; live on a terminal, plain lines every few seconds when piped."""

import io

from engine.progress import PIPED_EVERY, Progress, ProgressLine, duration, printer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_piped_line_shows_the_first_step_then_one_line_every_few_seconds_and_always_the_last():
    out, clock = io.StringIO(), Clock()
    line = ProgressLine("Rendering views", 10, out, clock)
    for done in range(11):
        line.show(done)
        clock.now += PIPED_EVERY / 2
    lines = out.getvalue().splitlines()
    assert lines[0] == "[diffusion3d] Rendering views: 0/10"
    assert [text.split(":")[1].split()[0] for text in lines] == ["0/10", "2/10", "4/10", "6/10", "8/10", "10/10"]


def test_the_line_says_the_rate_and_the_time_left_then_the_time_it_took():
    out, clock = io.StringIO(), Clock()
    line = ProgressLine("Generating", 40, out, clock)
    line.show(0)
    clock.now += 10
    line.show(10, "step 10")
    clock.now += 30
    line.show(40)
    first, middle, last = out.getvalue().splitlines()
    assert middle == "[diffusion3d] Generating: 10/40 · 1.00/s · ~30s left · step 10"
    assert last == "[diffusion3d] Generating: 40/40 · 1.00/s · 40s"


def test_a_slow_step_reads_as_seconds_each_and_a_fraction_of_a_render_counts_towards_the_time_left():
    out, clock = io.StringIO(), Clock()
    line = ProgressLine("Rendering panorama", 1, out, clock)
    line.show(0)
    clock.now += 30
    line.show(0.25, "sample 32/128")
    assert out.getvalue().splitlines()[-1] == "[diffusion3d] Rendering panorama: 0/1 · 120.0 s each · ~1m30s left · sample 32/128"


def test_a_line_never_goes_back():
    out, clock = io.StringIO(), Clock()
    line = ProgressLine("Rendering panorama", 1, out, clock)
    line.show(0.5)
    clock.now += 10
    line.show(0.0, "sample 0/128")
    assert len(out.getvalue().splitlines()) == 1


def test_on_a_terminal_the_line_is_redrawn_in_place_and_ended_once():
    out, clock = Terminal(), Clock()
    line = ProgressLine("Training", 3, out, clock)
    for done in range(3):
        line.show(done)
        clock.now += 1
    line.close()
    line.close()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1


def test_a_job_printer_starts_a_new_line_when_the_total_changes():
    out = io.StringIO()
    show = printer("Upscaling", out)
    show(Progress(0, 2, "loading"))
    show(Progress(2, 2, "loaded"))
    show(Progress(0, 50, "denoising"))
    assert [text.split(": ")[1].split()[0] for text in out.getvalue().splitlines()] == ["0/2", "2/2", "0/50"]


def test_durations_read_as_people_write_them():
    assert [duration(s) for s in (7, 185, 3720)] == ["7s", "3m05s", "1h02m"]


def test_the_last_step_is_shown_once():
    out = io.StringIO()
    line = ProgressLine("Rendering panorama", 1, out, Clock())
    line.show(0)
    line.show(1.0, "sample 16/16")
    line.show(1)
    assert len(out.getvalue().splitlines()) == 2
