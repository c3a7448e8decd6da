"""`tuneloop models` and `tuneloop keys`, driven through their typer sub-apps."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from tuneloop.cli.store import keys_app, models_app

runner = CliRunner()


def models(*args: str):
    return runner.invoke(models_app, [str(a) for a in args])


def test_register_promote_rollback_round_trip(store_file, make_run):
    assert models("register", make_run("r1")).output.startswith("registered support-triage:v1 (candidate)")
    result = models("register", make_run("r2", accuracy=0.97), "--parent", "support-triage:v1")
    assert result.exit_code == 0 and "support-triage:v2" in result.output
    assert models("promote", "support-triage:v1", "--reason", "first release").output.strip() == "support-triage:v1 is now production"
    result = models("promote", "support-triage@candidate", "--reason", "better accuracy")
    assert result.output.strip() == "support-triage:v2 is now production; support-triage:v1 archived"
    result = models("rollback", "support-triage", "--reason", "complaints")
    assert result.output.strip() == "support-triage:v1 is production again; support-triage:v2 archived"


def test_ls_and_show(store_file, make_run):
    models("register", make_run("r1"))
    models("register", make_run("r2", accuracy=0.97), "--parent", "support-triage:v1")
    models("register", make_run("x1", project="other"))
    models("promote", "support-triage:v2", "--reason", "ship it")
    listing = models("ls")
    assert listing.exit_code == 0
    assert "support-triage:v1" in listing.output and "other:v1" in listing.output and "accuracy 0.970 (0.200)" in listing.output
    only = models("ls", "--project", "other")
    assert "other:v1" in only.output and "support-triage" not in only.output
    shown = models("show", "support-triage@production")
    assert shown.exit_code == 0
    assert "support-triage:v2 <- support-triage:v1" in shown.output
    assert "candidate -> production" in shown.output and "ship it" in shown.output


def test_user_mistakes_exit_2_with_one_line(store_file, make_run, tmp_path):
    run = make_run("r1")
    models("register", run)
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    cases = [
        (("show", "support-triage:v9"), "unknown model version 'support-triage:v9'"),
        (("register", not_a_run), "not a tuneloop run folder"),
        (("register", run), "already registered"),
        (("rollback", "support-triage", "--reason", "x"), "no production version"),
        (("promote", "support-triage:v1", "--reason", "x"), "cannot promote support-triage:v1: its run folder"),
    ]
    for args, message in cases:
        if args[0] == "promote":
            shutil.rmtree(run)
        result = models(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("error: ") and message in result.output


def test_promote_requires_a_reason(store_file, make_run):
    models("register", make_run("r1"))
    assert models("promote", "support-triage:v1").exit_code == 2  # click: missing option


def test_keys_create_ls_revoke(store_file):
    created = runner.invoke(keys_app, ["create", "ci"])
    key = created.stdout.strip()
    assert created.exit_code == 0 and key.startswith("tl_") and "cannot be shown again" in created.stderr
    listing = runner.invoke(keys_app, ["ls"])
    assert "ci" in listing.output and key.split("_", 2)[2] not in listing.output
    assert runner.invoke(keys_app, ["revoke", "ci"]).output.strip() == "API key 'ci' revoked"
    again = runner.invoke(keys_app, ["revoke", "ci"])
    assert again.exit_code == 2 and "already revoked" in again.output
