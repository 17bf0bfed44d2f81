"""Release watcher: which registry models have new commits on the hub, and which new repos joined a tracked
family — written as a run plan the nightly turns into one job per model.

Why a plan: a nightly run costs GPU hours per model, so it tests what changed (``--all``: everything), at the
exact commit it saw (the job pins that revision before testing, ``--pin ID=REV``), and a new family member — a
repo with no registry entry yet — is flagged for a human to add, not tested blind.

The hub is asked through ``huggingface_hub.HfApi`` (``list_repo_commits`` per repo, ``list_models(author=,
search=)`` per family rule: each family's ``hub_search`` in ``harness.families``). Any object with those two methods
works: tests pass a ``RecordedHub`` built from JSON under ``fixtures/hub/``; ``--record PATH`` captures live answers
in that format.
An unreachable hub (or ``HF_HUB_OFFLINE=1``) raises ``HubUnreachable``: the CLI prints one line and exits 3.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from harness.families import FAMILIES
from harness.specs import DEFAULT_ROOT, load_specs

EXIT_UNREACHABLE = 3
# Re-packagings of a release, not new releases: quantised or converted copies.
NOT_A_RELEASE = re.compile(r"gptq|awq|gguf|int4|int8|fp8|bnb|mlx|onnx|4bit|8bit", re.I)
SHA = re.compile(r"^[0-9a-f]{40}$")


class HubUnreachable(RuntimeError):
    """The hub cannot be asked (offline mode, no network, DNS); the message is one line for the user."""


def _unreachable(e: BaseException) -> bool:
    """Network-level failures (not a 404 for one repo): offline mode, connection, DNS, timeouts."""
    if any(c.__name__ == "HfHubHTTPError" for c in type(e).__mro__):
        return False                      # the hub answered, about one repo
    if isinstance(e, (OSError, TimeoutError)):
        return True                       # includes OfflineModeIsEnabled and requests' ConnectionError
    return any(c.__module__.split(".")[0] in {"httpx", "httpx2", "requests", "urllib3"}
               and c.__name__ in {"TransportError", "ConnectionError", "Timeout", "TimeoutException", "NetworkError"}
               for c in type(e).__mro__)


def _call(fn, *args, **kwargs):
    try:
        return list(fn(*args, **kwargs))
    except Exception as e:
        if _unreachable(e):
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise HubUnreachable(f"hub unreachable ({type(e).__name__}: {first[:200]})") from None
        raise


def _iso(x) -> str | None:
    return x.isoformat() if isinstance(x, datetime) else x


def check_model(api, spec) -> dict:
    """Where ``spec``'s tracked ref stands on the hub: ``status`` is up_to_date, new_commits, unpinned
    (a ref such as main or refs/pr/70: its head is tested), pinned_not_found (the pin is not in the history
    of main), or error (the hub answered with an error for this repo)."""
    pinned = SHA.match(spec.revision or "") is not None
    ref = "main" if pinned else spec.revision
    entry = {"id": spec.id, "family": spec.family, "repo": spec.repo, "pinned": spec.revision, "ref": ref}
    try:
        commits = _call(api.list_repo_commits, spec.repo, revision=ref)
    except HubUnreachable:
        raise
    except Exception as e:
        return {**entry, "status": "error", "revision": spec.revision, "error": f"{type(e).__name__}: {e}"[:300]}
    if not commits:
        return {**entry, "status": "error", "revision": spec.revision, "error": f"no commits on {ref}"}
    shas = [c.commit_id for c in commits]
    head = shas[0]
    newer = shas[: shas.index(spec.revision)] if spec.revision in shas else shas
    entry |= {"revision": head, "new_commits": [{"commit_id": c.commit_id, "title": c.title,
                                                 "created_at": _iso(c.created_at)} for c in commits[: len(newer)]]}
    if not pinned:
        return entry | {"status": "unpinned", "new_commits": []}
    if spec.revision not in shas:
        return entry | {"status": "pinned_not_found", "new_commits": []}
    return entry | {"status": "new_commits" if newer else "up_to_date"}


def find_new_members(api, specs) -> list[dict]:
    """Repos matching a family rule that are not in the registry and were created after the newest registry
    member the same search returns (older or same-day repos are releases the registry chose not to track);
    quantised or converted copies (``NOT_A_RELEASE``) are skipped."""
    known = {s.repo.lower() for s in specs.values()}
    found = []
    for family, rules in ((f.name, f.hub_search) for f in FAMILIES.values()):
        for author, search in rules:
            hits = _call(api.list_models, author=author, search=search, limit=500)
            dates = [_iso(m.created_at) for m in hits if m.id.lower() in known and getattr(m, "created_at", None)]
            since = max(dates) if dates else ""
            for m in hits:
                created = _iso(getattr(m, "created_at", None)) or ""
                if m.id.lower() in known or NOT_A_RELEASE.search(m.id) or (since and created <= since):
                    continue
                found.append({"repo": m.id, "family": family, "created_at": created or None,
                              "suggested_id": m.id.split("/")[-1].lower().replace(".", "_"),
                              "action": f"add fixtures/models/<id>.toml (family {family}) with a pinned revision "
                                        "and its matched backbone to test it"})
    return sorted({f["repo"]: f for f in found}.values(), key=lambda f: f["repo"])


def make_plan(api, specs=None, *, include_all: bool = False) -> dict:
    """The run plan: every model's hub status, which to test at which revision (``matrix`` is the GitHub
    Actions ``strategy.matrix``), and the new family members."""
    specs = load_specs() if specs is None else specs
    models = []
    for spec in sorted(specs.values(), key=lambda s: s.id):
        if spec.loader == "api" or spec.offline:
            entry = {"id": spec.id, "family": spec.family, "repo": spec.repo, "pinned": spec.revision,
                     "revision": spec.revision, "status": "not_on_hub"}
        else:
            entry = check_model(api, spec)
        entry["test"] = include_all or entry["status"] in ("new_commits", "unpinned", "pinned_not_found")
        models.append(entry)
    include = [{"model": m["id"], "revision": m["revision"], "repo": m["repo"], "family": m["family"]}
               for m in models if m["test"]]
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "models": models,
            "new_family_members": find_new_members(api, specs), "matrix": {"include": include}}


def summary_lines(plan: dict) -> list[str]:
    out = []
    for m in plan["models"]:
        n = len(m.get("new_commits", []))
        what = {"new_commits": f"{n} new commit(s) on {m.get('ref')}: {m['pinned'][:10]} → {m['revision'][:10]}"
                               + (f" \"{m['new_commits'][0]['title']}\"" if n else ""),
                "unpinned": f"unpinned ({m['pinned']}); its head is {m['revision'][:10]}: pin it",
                "pinned_not_found": f"pinned {m['pinned'][:10]} is not in the history of main "
                                    f"(head {m['revision'][:10]})",
                "error": f"hub error: {m.get('error')}", "up_to_date": "up to date",
                "not_on_hub": "not on the hub (API model)"}[m["status"]]
        out.append(f"{m['id']}: {what}{' → TEST' if m['test'] else ''}")
    out += [f"NEW FAMILY MEMBER: {f['repo']} ({f['family']}, created {f['created_at']}) — {f['action']}"
            for f in plan["new_family_members"]]
    out.append(f"plan: {len(plan['matrix']['include'])} model(s) to test, {len(plan['new_family_members'])} new "
               "family member(s) to add")
    return out


# ----------------------------------------------------------------------------- hubs: live, recorded, recording
def live_api():
    """``HfApi()``, unless offline mode is set (checked first, so the user gets one line, not five retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise HubUnreachable("hub unreachable: HF_HUB_OFFLINE=1 is set; unset it to ask the hub for new releases")
    from huggingface_hub import HfApi
    return HfApi()


class RecordedHub:
    """An api object answering from recorded JSON: ``{"list_repo_commits": {"REPO@REF": [commit, ...]},
    "list_models": {"AUTHOR/SEARCH": [model, ...]}}``, or ``{"unreachable": "message"}`` to replay a failure."""

    def __init__(self, data: dict, source: str = "recording"):
        self.data, self.source = data, source

    @classmethod
    def load(cls, path: Path | str) -> "RecordedHub":
        return cls(json.loads(Path(path).read_text()), str(path))

    def _answer(self, table: str, key: str):
        if "unreachable" in self.data:
            raise ConnectionError(self.data["unreachable"])
        if key not in self.data.get(table, {}):
            raise LookupError(f"{self.source} has no recorded {table} answer for {key!r}")
        return [SimpleNamespace(**x) for x in self.data[table][key]]

    def list_repo_commits(self, repo_id, *, revision=None, **_):
        return self._answer("list_repo_commits", f"{repo_id}@{revision or 'main'}")

    def list_models(self, *, author=None, search=None, **_):
        return self._answer("list_models", f"{author}/{search}")


class RecordingHub:
    """Wraps a live api and keeps its answers in ``RecordedHub``'s format (``--record PATH``)."""

    def __init__(self, api):
        self.api, self.data = api, {"list_repo_commits": {}, "list_models": {}}

    def list_repo_commits(self, repo_id, *, revision=None, **kw):
        out = list(self.api.list_repo_commits(repo_id, revision=revision, **kw))
        self.data["list_repo_commits"][f"{repo_id}@{revision or 'main'}"] = [
            {"commit_id": c.commit_id, "title": c.title, "created_at": _iso(c.created_at)} for c in out]
        return out

    def list_models(self, *, author=None, search=None, **kw):
        out = list(self.api.list_models(author=author, search=search, **kw))
        self.data["list_models"][f"{author}/{search}"] = [
            {"id": m.id, "created_at": _iso(getattr(m, "created_at", None)),
             "last_modified": _iso(getattr(m, "last_modified", None))} for m in out]
        return out

    def save(self, path: Path | str) -> None:
        recorded = {"_about": f"recorded from the hub on {datetime.now(timezone.utc).date()} by "
                              "`python -m harness watch --record`", **self.data}
        Path(path).write_text(json.dumps(recorded, indent=1) + "\n")


# ----------------------------------------------------------------------------- pinning
REVISION = re.compile(r"[A-Za-z0-9._/+:=~@-]{1,255}")      # commit shas, branch/tag/PR refs, package pins


def pin(spec_id: str, revision: str, root: Path | str = DEFAULT_ROOT) -> Path:
    """Rewrite ``revision = "..."`` in the model's TOML (the nightly job pins the commit the plan chose, so
    every test of that job runs that exact revision). The new entry is validated *before* the file is written
    (atomically): a bad revision leaves the registry as it was."""
    import tomllib

    from harness.cache import atomic_write_bytes
    from harness.specs import SpecError, parse_spec

    path = Path(root) / f"{spec_id}.toml"
    if not path.is_file():
        raise KeyError(f"unknown model {spec_id!r}: no {path}")
    if not REVISION.fullmatch(revision):
        raise ValueError(f"{path.name}: revision {revision!r} is not a commit sha or ref name (letters, digits and "
                         "._/+:=~@- only); the registry was not changed")
    text = path.read_text()
    table = re.search(r"(?m)^\[", text)                  # only the top-level table, not [backbone]
    head, rest = (text[: table.start()], text[table.start():]) if table else (text, "")
    head, n = re.subn(r'(?m)^revision\s*=\s*"[^"]*"', lambda _: f'revision = "{revision}"', head, count=1)
    if n != 1:
        raise ValueError(f"{path.name}: no top-level revision line to pin")
    text = head + rest
    try:
        parse_spec(tomllib.loads(text), path)
    except (tomllib.TOMLDecodeError, SpecError) as e:
        raise ValueError(f"{path.name}: pinning {revision!r} would make the entry invalid ({e}); "
                         "the registry was not changed") from None
    atomic_write_bytes(path, text.encode())
    load_specs(root)
    return path
