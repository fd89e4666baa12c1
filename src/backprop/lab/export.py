"""The Python script the lab exports: the session's training, runnable without the lab's page.

The script holds the settings (and an uploaded CSV) as data and trains through the same
builders as the lab: :func:`backprop.lab.data.load_data` for the data,
:mod:`backprop.lab.training` for the network, optimizer, schedule, penalty and the
``backprop.train.Trainer`` step, :class:`backprop.data.BatchStream` for the batches. Nothing
is restated as text, so the script trains exactly as the lab does: the same seed and
steps give the same losses.
"""
from __future__ import annotations

from backprop.lab.rounding import rounded
from backprop.lab.settings import SETTINGS
from backprop.lab.training import activation_names

__all__ = ["script"]


def _describe(session) -> list:
    """Lines saying what the script trains, for its docstring."""
    s = session.settings
    hidden = ", ".join(f"{n} {a}" for n, a in zip(s["hidden"], activation_names(s), strict=True))
    schedule = (f"warmup + cosine over {s['schedule_steps']} steps"
                if s["schedule"] == "warmup_cosine" else "constant")
    extras = [f"{k} {s[k]:g}" for k in ("clip", "weight_decay", "l1", "l2", "dropout") if s[k]]
    inputs = ", ".join(session.inputs) if len(session.inputs) <= 8 else \
        f"{len(session.inputs)} pixel values"
    return [f"Data: {s['dataset']} ({session.task}), inputs {inputs}.",
            f"Network: {session.sizes[0]} inputs, hidden layers [{hidden}], "
            f"{session.sizes[-1]} outputs; init {s['init']}.",
            f"Training: {s['optimizer']} lr {s['lr']:g}, batch size {s['batch_size']}, "
            f"schedule {schedule}" + (f"; {', '.join(extras)}." if extras else ".")]


def _csv_lines(csv_data: dict) -> list:
    """``CSV = {...}``: the uploaded CSV's arrays, embedded (float32 values exactly)."""
    lines = ["CSV = {  # the uploaded CSV",
             f"    'X': np.array({rounded(csv_data['X'], 9)}, dtype=np.float32),"]
    if csv_data["task"] == "classification":
        lines.append(f"    'y': np.array({csv_data['y'].tolist()}, dtype=np.int64),")
    else:
        lines.append(f"    'y': np.array({rounded(csv_data['y'].ravel(), 9)}, "
                     f"dtype=np.float32).reshape(-1, 1),")
    lines += [f"    'task': {csv_data['task']!r},", "}"]
    return lines


def script(session) -> str:
    """Python source that trains the session's data and network again with backprop.

    The script trains from the seed (``--steps N``, default the steps trained so far or
    1000), can start from exported weights (``--checkpoint FILE``) and can write the
    per-step history (``--history FILE``, ``History.to_json``).
    """
    s = session.settings
    settings = {k: s[k] for k in SETTINGS if k != "speed"}
    csv_data = session._csv if s["dataset"] == "csv" else None
    lines = [
        f'"""Train the network of a backprop lab session again: {s["dataset"]}, hidden '
        f'{s["hidden"]}, {s["optimizer"]} lr {s["lr"]:g}.',
        "",
        *_describe(session),
        "",
        f"Exported from the backprop lab at step {session.step_count}. It trains as the lab "
        f"does,",
        "through the same builders (backprop.lab.data, backprop.lab.training) and the same",
        "Trainer step: the same seed and steps give the same losses. Run it with",
        "",
        "    python this_file.py --steps 2000                 # train from the seed's weights",
        "    python this_file.py --checkpoint lab.safetensors # start from exported weights",
        '"""',
        "import argparse",
        "",
        *(["import numpy as np", ""] if csv_data is not None else []),
        "import backprop",
        "from backprop.data import BatchStream",
        "from backprop.lab.data import load_data",
        "from backprop.lab.training import build_model, build_trainer, train_step",
        "from backprop.train import TrainingDiverged",
        "",
        "SETTINGS = {",
        *(f"    {name!r}: {value!r}," for name, value in settings.items()),
        "}",
        *(_csv_lines(csv_data) if csv_data is not None else ["CSV = None"]),
        "",
        "",
        "def main(argv=None):",
        "    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])",
        f"    parser.add_argument('--steps', type=int, default={max(session.step_count, 1000)},",
        "                        help='training steps')",
        "    parser.add_argument('--checkpoint', help='start from weights the lab exported')",
        "    parser.add_argument('--history', help='write the per-step history (JSON) here')",
        "    args = parser.parse_args(argv)",
        "",
        "    data = load_data(SETTINGS, CSV)",
        "    X_train, y_train = data['X_train'], data['y_train']",
        "    n_out = data['n_classes'] if data['task'] == 'classification' else 1",
        "    model = build_model(SETTINGS, len(data['inputs']), n_out).model",
        "    if args.checkpoint:",
        "        model.load_state_dict(backprop.load(args.checkpoint)['model'])",
        "    trainer = build_trainer(SETTINGS, model, data['task'])",
        "    batches = BatchStream(len(y_train), generator=backprop.Generator(SETTINGS['seed']))",
        "    batch_size = min(SETTINGS['batch_size'], len(y_train))",
        "",
        "    def evaluate(X, y):",
        "        return trainer.evaluate([(backprop.from_numpy(X), backprop.from_numpy(y))])"
        "['loss']",
        "",
        "    def report(step):",
        "        print(f'step {step}: train loss {evaluate(X_train, y_train):.4f}, '",
        "              f'test loss {evaluate(data[\"X_test\"], data[\"y_test\"]):.4f}')",
        "",
        "    report(0)",
        "    report_every = max(1, args.steps // 10)",
        "    status = 0",
        "    for step in range(1, args.steps + 1):",
        "        try:",
        "            train_step(trainer, batches, X_train, y_train, batch_size, SETTINGS)",
        "        except TrainingDiverged as error:",
        "            print(f'diverged at step {step}: {error}')",
        "            status = 1",
        "            break",
        "        if step % report_every == 0 or step == args.steps:",
        "            report(step)",
        "    if args.history:",
        "        trainer.history.to_json(args.history)",
        "    return status",
        "",
        "",
        "if __name__ == '__main__':",
        "    raise SystemExit(main())",
    ]
    return "\n".join(lines) + "\n"
