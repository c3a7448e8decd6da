"""Training progress where stderr is not a terminal: periodic plain lines."""

from tuneloop.train.callbacks import PlainProgress

FIELDS = {"loss": "1.2345", "eval_loss": "-", "tps": "512"}


def test_plain_progress_prints_every_nth_step_each_validation_and_the_end(capsys):
    progress = PlainProgress(total=100, start_step=0, every=5, seconds=1e9)
    for step in range(1, 101):
        progress.log(step, FIELDS)
        if step == 42:
            progress.log(step, {**FIELDS, "eval_loss": "1.1000"}, validation=True)
    progress.finish(100, FIELDS)
    lines = capsys.readouterr().err.splitlines()
    steps = [int(line.split()[1].split("/")[0]) for line in lines]
    assert steps == sorted([*range(5, 101, 5), 42])
    assert lines[0].startswith("step 5/100  loss 1.2345  val -  512 tok/s  eta ")
    assert "val 1.1000" in lines[steps.index(42)]
