"""``python -m harness doctor MODEL``: a first-run self-check of one speech-LLM on this machine.

1. **revisions** — with hub access, the commit shas the registry's revisions resolve to (what to pin; an
   unpinned "main" gets its sha printed as the line to write into ``fixtures/models/<id>.toml``);
2. **load** — the model through the suite's own loader (a failure prints what to do, not a traceback);
3. **audio positions** — on real speech of one item: the positions the adapter calls audio are exactly the rows
   the model's own merge changed (every other row is the token's plain embedding), and their number is the
   number of audio embeddings the processor asked for;
4. **scoring vs generation** — on a few items of each option task, the suite's answer (option log-likelihoods)
   against the model's own greedy ``generate()`` mapped onto the options. Agreement under ``--min-agreement``
   fails, naming the items and what the model said.

MODEL is a registry id, or ``ultravox-tiny`` (the committed parity checkpoint). Offline the revision step says
so and the rest runs. Exit status: 0 all checks passed, 1 a check failed, 2 the model did not load.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DEFAULT_ITEMS = 4
DEFAULT_MIN_AGREEMENT = 0.75
MAX_NEW_TOKENS = 8


@dataclass
class Report:
    """What the doctor found; ``lines`` is what it printed."""

    model: str
    pins: dict = field(default_factory=dict)              # "repo" → resolved sha (or None when not resolved)
    positions_ok: bool | None = None
    agreement: dict = field(default_factory=dict)         # task → share of items where scoring = generation
    disagreements: list = field(default_factory=list)     # (task, item id, scored choice, generated text)
    failures: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    load_failed: bool = False

    @property
    def exit_status(self) -> int:
        """0 all checks passed, 1 a check failed, 2 the model did not load."""
        return 2 if self.load_failed else (1 if self.failures else 0)


def resolve_spec(model: str):
    from harness.specs import get_spec
    from harness.systems.ultravox_fixture import TINY_ID, tiny_spec

    return tiny_spec() if model == TINY_ID else get_spec(model)


# -- 1. revisions --------------------------------------------------------------------------------------------
def resolve_revisions(spec, *, hub: bool | None = None, model_info: Callable | None = None) -> dict:
    """{"repo@revision": sha or a reason it was not resolved} for the model and its backbone."""
    from harness.availability import hub_reachable

    hub = hub_reachable() if hub is None else hub
    wanted = [(spec.repo, spec.revision)]
    if spec.has_cascade:
        wanted.append((spec.backbone.repo, spec.backbone.revision))
    out = {}
    for repo, rev in wanted:
        key = f"{repo}@{rev}"
        if spec.offline or Path(repo).is_dir() or str(rev).startswith("pkg:"):
            out[key] = "local (packaged or committed files; nothing to pin on the hub)"
        elif not hub:
            out[key] = "not resolved: no hub access (HF_HUB_OFFLINE=1)"
        else:
            if model_info is None:
                from huggingface_hub import model_info
            try:
                out[key] = model_info(repo, revision=rev).sha
            except Exception as err:   # noqa: BLE001 - reported, the doctor goes on
                out[key] = f"not resolved: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
    return out


def pin_lines(spec, pins: dict) -> list[str]:
    """One line per repo: its resolved sha, and the registry line to write when the entry is not pinned to it."""
    lines = []
    for key, sha in pins.items():
        repo, rev = key.rsplit("@", 1)
        if isinstance(sha, str) and len(sha) == 40 and all(c in "0123456789abcdef" for c in sha):
            field = "revision" if repo == spec.repo else "[backbone] revision"
            hint = "pinned" if sha == rev else f"PIN: {field} = \"{sha}\" in fixtures/models/{spec.id}.toml"
            lines.append(f"   {key} -> {sha}  ({hint})")
        else:
            lines.append(f"   {key}: {sha}")
    return lines


# -- 3. audio positions --------------------------------------------------------------------------------------
def check_positions(system, inputs: dict) -> tuple[bool, str]:
    """Do ``audio_positions`` mark exactly the rows the model's merge overwrote?"""
    import torch

    ids = inputs["input_ids"][0]
    positions = system.audio_positions(inputs)
    merged = system.prefix_embeds(inputs).float()
    with torch.no_grad():
        plain = system.model.get_input_embeddings()(ids.to(merged.device)).float()
    changed = ((merged - plain).abs().amax(-1) > 1e-6).nonzero().flatten().cpu()
    n_expected = None
    if "audio_token_len" in inputs:                       # Ultravox: the processor's own count
        n_expected = int(torch.as_tensor(inputs["audio_token_len"]).sum())
    elif hasattr(system, "family"):                        # native classes: the placeholder's expansion
        n_expected = int((ids == system.audio_token_id).sum())
    ok = changed.tolist() == positions.tolist() and (n_expected is None or n_expected == len(positions))
    detail = (f"{len(positions)} audio positions ({positions[0].item()}..{positions[-1].item()} of {len(ids)} "
              f"tokens); the merge changed {len(changed)} rows" + (f"; the processor asked for {n_expected}"
                                                                    if n_expected is not None else ""))
    return ok and len(positions) > 0, detail


# -- 4. scoring vs the model's own generate() ------------------------------------------------------------------
def own_generate(system, inputs: dict, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
    """The model's own greedy ``generate()`` on the processor's inputs, decoded (special tokens dropped)."""
    import torch

    tok = system.backbone.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    feed = system._to_model(inputs)
    with torch.no_grad():
        out = system.model.generate(**feed, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                    pad_token_id=pad)
    n = feed["input_ids"].shape[1]
    new = out[0, n:] if out.shape[1] > n and torch.equal(out[0, :n].cpu(), feed["input_ids"][0].cpu()) else out[0]
    return tok.decode(new, skip_special_tokens=True).strip()


def option_said(text: str, options) -> str | None:
    """The one option a generated reply names (whole words, after ``normalize_answer``; a longer option claims
    its words first, so "on the roof" is not also "roof"); None when it names none or several."""
    from harness.tasks import normalize_answer

    rest = f" {normalize_answer(text)} "
    named = []
    for option in sorted(options, key=lambda o: -len(normalize_answer(o))):
        n = normalize_answer(option)
        if n and f" {n} " in rest:
            named.append(option)
            rest = rest.replace(f" {n} ", " | ")
    return named[0] if len(named) == 1 else None


def option_tasks() -> list:
    from harness.tasks import load_task, mini_task_names

    tasks = [load_task(n) for n in mini_task_names()]
    return [t for t in tasks if t.kind != "open_qa"]


# -- the whole check ---------------------------------------------------------------------------------------------
def run(model: str, *, device: str | None = None, items: int = DEFAULT_ITEMS, tasks: list[str] | None = None,
        min_agreement: float = DEFAULT_MIN_AGREEMENT, hub: bool | None = None, runner=None, system=None,
        out: Callable[[str], None] = print) -> Report:
    """The four checks on ``model``; ``system``/``runner`` may be given (tests), else loaded/created here."""
    import torch

    from harness import prompts
    from harness.runner import Runner
    from harness.tasks import load_task

    report = Report(model)

    def say(line: str = ""):
        report.lines.append(line)
        out(line)

    spec = resolve_spec(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    say(f"doctor: {spec.id} ({spec.loader}, {spec.repo}) on {device}")
    say("1. revisions")
    report.pins = resolve_revisions(spec, hub=hub)
    for line in pin_lines(spec, report.pins):
        say(line)

    say("2. load")
    if system is None:
        from harness.systems.load import load_speech_llm
        from harness.systems.load_errors import ModelLoadError

        try:
            system = load_speech_llm(spec, device=device)
        except (ModelLoadError, RuntimeError, ValueError, OSError) as err:
            say(f"   FAILED: {err}")
            report.failures.append("load")
            report.load_failed = True
            say("doctor: FAILED: load")
            return report
    if not hasattr(system, "prefix_embeds"):
        say(f"   {spec.id} is a cascade (no audio merge, no own generate()): nothing more to check")
        return report
    say(f"   loaded {system.name}: {system.backbone.fingerprint}")
    prov = getattr(system, "provenance", None)
    if prov is not None:
        say(f"   weights from the checkpoint: {prov.weights}; LoRA deltas merged: {prov.lora_deltas}; "
            f"backbone {prov.backbone}")
        for thing in prov.unpinned:
            say(f"   WARNING unpinned: {thing}")

    runner = runner or Runner(disk_cache=False, progress=False)
    chosen = [load_task(t) for t in tasks] if tasks else option_tasks()
    say("3. audio positions")
    first = chosen[0].subset(1)[0]
    inputs = system.inputs_for(chosen[0], first, runner.clean_audio(first))
    ok, detail = check_positions(system, inputs)
    report.positions_ok = ok
    say(f"   {'ok' if ok else 'FAILED'}: {detail}")
    if not ok:
        report.failures.append("audio positions")

    say(f"4. option scoring vs the model's own greedy generate() ({items} items per task)")
    for task in chosen:
        agree, subset = 0, task.subset(items)
        for item in subset:
            audio = runner.clean_audio(item)
            scored = system.answer(task, item, audio).choice
            said = own_generate(system, system.prepare(prompts.messages(task, item, system.audio_slot), audio))
            if option_said(said, item.options) == scored:
                agree += 1
            else:
                report.disagreements.append((task.name, item.id, scored, said))
        report.agreement[task.name] = agree / len(subset)
        say(f"   {task.name}: {agree}/{len(subset)} agree")
    total = sum(report.agreement.values()) / len(report.agreement)
    if total < min_agreement:
        report.failures.append("agreement")
        say(f"   FAILED: agreement {total:.2f} < {min_agreement:.2f}; the items where the scored option is not "
            "what the model generates:")
        for task_name, item_id, scored, said in report.disagreements:
            say(f"     {task_name}/{item_id}: scored {scored!r}, generated {said!r}")
    else:
        say(f"   ok: agreement {total:.2f} (≥ {min_agreement:.2f})")
    say("doctor: " + ("all checks passed" if not report.failures else "FAILED: " + ", ".join(report.failures)))
    return report


def main(args: argparse.Namespace) -> int:
    try:
        resolve_spec(args.model)
    except KeyError as err:
        print(f"error: {err.args[0]}")
        return 2
    return run(args.model, device=args.device, items=args.items, tasks=args.task or None,
               min_agreement=args.min_agreement).exit_status


def add_parser(sub) -> None:
    doc = sub.add_parser("doctor", help="first-run self-check of one model: revisions to pin, load, audio "
                                        "positions, option scoring vs the model's own generate()",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    doc.add_argument("model", help="a registry id, or ultravox-tiny (the committed parity checkpoint)")
    doc.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    doc.add_argument("--items", type=int, default=DEFAULT_ITEMS, help="items per task for the agreement check")
    doc.add_argument("--task", action="append", default=[], help="only this task (repeatable)")
    doc.add_argument("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT)
    doc.set_defaults(func=main)
