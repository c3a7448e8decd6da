"""Kill points: ``python crash_points.py POINT tuneloop-args...`` runs ``tuneloop`` and SIGKILLs itself at POINT.

A point is ``name@step``; the process kills itself (SIGKILL: no handler, no cleanup, as the OOM killer
or a pulled plug would) at that moment of the real command's code path:

- ``header``: a new run's config, data manifest and splits are being written (its splits half done);
- ``mid-step@S``: the forward pass of training step S+1 has run, its backward and optimiser step have not;
- ``evaluation@S``: in the middle of the validation pass after step S (its second batch);
- ``checkpoint-write@S``: checkpoint-S holds the model's files, not yet the optimiser's, schedule or state;
- ``before-manifest@S``: checkpoint-S is written by transformers, its manifest of checksums is not;
- ``final-save``: training has ended and the adapter is half written into its staging folder;
- ``before-summary``: the adapter is saved, ``train.json`` is not;
- ``store-event@N``: inside a store transaction, as it records its Nth stage event (promote, rollback,
  retrain's decision), before it commits.
"""

from __future__ import annotations

import os
import signal
import sys


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    name, _, step = point.partition("@")
    ARMS[name](int(step) if step else None)


def arm_header(_: None) -> None:
    from tuneloop.runs.folder import RunDir

    def killing(self, splits):
        (self.splits_dir).mkdir(parents=True, exist_ok=True)
        (self.splits_dir / "train.jsonl").write_text('{"messages": [')
        die()

    RunDir.write_splits = killing


def arm_mid_step(step: int) -> None:
    from tuneloop.train.trainer import TuneloopTrainer

    compute_loss = TuneloopTrainer.compute_loss

    def killing(self, model, inputs, *args, **kwargs):
        loss = compute_loss(self, model, inputs, *args, **kwargs)
        if model.training and self.state.global_step == step:
            die()
        return loss

    TuneloopTrainer.compute_loss = killing


def arm_evaluation(step: int) -> None:
    from tuneloop.train.trainer import TuneloopTrainer

    evaluate = TuneloopTrainer.evaluate

    def killing(self, *args, **kwargs):
        if self.state.global_step == step:
            loss_fn, batches = self.loss_fn, []

            def second_batch_kills(model, batch):
                batches.append(batch)
                if len(batches) == 2:
                    die()
                return loss_fn(model, batch)

            self.loss_fn = second_batch_kills
        return evaluate(self, *args, **kwargs)

    TuneloopTrainer.evaluate = killing


def arm_checkpoint_write(step: int) -> None:
    from transformers import Trainer

    save_optimizer = Trainer._save_optimizer_and_scheduler

    def killing(self, output_dir):
        if self.state.global_step == step:
            die()
        return save_optimizer(self, output_dir)

    Trainer._save_optimizer_and_scheduler = killing


def arm_before_manifest(step: int) -> None:
    import tuneloop.train.callbacks as callbacks

    write_manifest = callbacks.write_manifest

    def killing(folder, at_step):
        if at_step == step:
            die()
        return write_manifest(folder, at_step)

    callbacks.write_manifest = killing


def arm_final_save(_: None) -> None:
    import tuneloop.train.run as run
    from tuneloop.atomic import staged_dir

    def killing(model, tokenizer, config, out):
        with staged_dir(out / "adapter") as folder:
            (folder / "adapter_config.json").write_text("{")
            die()

    run.save_trained = killing


def arm_before_summary(_: None) -> None:
    import tuneloop.train.run as run

    run.write_train_summary = lambda *args, **kwargs: die()


def arm_store_event(count: int) -> None:
    import tuneloop.store.versions as versions

    record_event, calls = versions._record_event, []

    def killing(*args, **kwargs):
        calls.append(args)
        if len(calls) == count:
            die()
        return record_event(*args, **kwargs)

    versions._record_event = killing


ARMS = {
    "header": arm_header,
    "mid-step": arm_mid_step,
    "evaluation": arm_evaluation,
    "checkpoint-write": arm_checkpoint_write,
    "before-manifest": arm_before_manifest,
    "final-save": arm_final_save,
    "before-summary": arm_before_summary,
    "store-event": arm_store_event,
}

if __name__ == "__main__":
    arm(sys.argv[1])
    from tuneloop.cli import main

    sys.argv = ["tuneloop", *sys.argv[2:]]
    main()
