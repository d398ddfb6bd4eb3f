"""The one console progress facility (app.progress): bars per stage on stderr."""

from app.progress import ConsoleProgress, stage_bar


def test_console_progress_shows_each_stage_and_its_count(capsys):
    p = ConsoleProgress()
    for k in range(1, 4):
        p("corners", k, 3)
    p("bundle adjustment", 7, 0)
    p.done()
    out = capsys.readouterr()
    assert out.out == ""  # results on stdout stay clean
    assert "corners" in out.err and "3/3" in out.err and "bundle adjustment" in out.err and "7" in out.err
    quiet = ConsoleProgress(quiet=True)
    quiet("x", 1, 2)
    assert capsys.readouterr().err == ""


def test_stage_bar_counts_to_the_total(capsys):
    with stage_bar("3D poses", 5) as update:
        for k in range(1, 6):
            update(k, 5)
    assert "3D poses" in capsys.readouterr().err
