#!/usr/bin/env python3
"""Fails when a part of the host imports a part ARCHITECTURE.md says it may not.

The table "Who may import whom" in ARCHITECTURE.md is the rule; this script
reads it (so the two cannot drift apart) and checks it two ways:
- the crates under host/crates/: the `weft-*` crates each one's Cargo.toml
  depends on (the compiler then enforces it: a crate cannot use what it does
  not depend on);
- the modules of the `weft` crate itself (host/src/): every `crate::<module>`
  path and every item re-exported at the crate root (`crate::Host`). Test
  modules are checked too: a test that reaches across a boundary is a
  boundary crossed.

Usage: python3 scripts/check-deps.py [--self-test]
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "host" / "src"
CRATES = ROOT / "host" / "crates"
TABLE_HEADING = "## Who may import whom"

# Items the crate root re-exports, and the module each comes from.
ROOT_ITEMS = {
    "Host": "host",
    "HostBuilder": "host",
    "HostError": "host",
    "LoadedWorkflow": "host",
    "PluginInfo": "host",
    "PluginSource": "host",
    "Item": "core",
    "Payload": "core",
    "new_job_id": "core",
    "bundled_workflows": "bundled",
    # weft-core's modules, re-exported by the weft crate.
    "item": "core",
    "errors": "core",
}


def read_table(text):
    """Returns {module: set of modules it may import} from the markdown table."""
    start = text.find(TABLE_HEADING)
    if start < 0:
        sys.exit(f"check-deps: ARCHITECTURE.md has no `{TABLE_HEADING}` section")
    rules = {}
    for line in text[start:].splitlines()[1:]:
        if line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        module = cells[0].strip("`")
        allowed = set(re.findall(r"`([a-z_]+)`", cells[1]))
        rules[module] = allowed
    if not rules:
        sys.exit("check-deps: the table in ARCHITECTURE.md has no rows")
    return rules


def module_of(path):
    """The top-level module a source file belongs to (`queue` for queue/worker.rs)."""
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def imports_in(text):
    """Every top-level module a file's code names through `crate::`."""
    found = set()
    for match in re.finditer(r"crate::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)", text):
        names = match.group(1)
        names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names) if names.startswith("{") else [names]
        for name in names:
            found.add(ROOT_ITEMS.get(name, name))
    return found


def strip_comments(text):
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def crate_dependencies(manifest):
    """The `weft-*` crates a Cargo.toml depends on, as module names (`weft-core` -> `core`)."""
    return set(re.findall(r"^weft-([a-z]+)(?:\.workspace|\s*=)", manifest.read_text(), re.M))


def crate_violations(rules):
    problems = []
    for manifest in sorted(CRATES.glob("*/Cargo.toml")):
        crate = manifest.parent.name
        if crate not in rules:
            problems.append(f"{manifest.relative_to(ROOT)}: crate `weft-{crate}` is missing from the table in ARCHITECTURE.md")
            continue
        for dependency in sorted(crate_dependencies(manifest) - rules[crate]):
            problems.append(
                f"{manifest.relative_to(ROOT)}: `weft-{crate}` may not depend on `weft-{dependency}` "
                f"(ARCHITECTURE.md allows: {', '.join(sorted(rules[crate])) or 'nothing'})"
            )
    return problems


def violations(rules):
    problems = crate_violations(rules)
    modules = set(rules)
    for path in sorted(SRC.rglob("*.rs")):
        module = module_of(path)
        if module in ("lib", "main", "cli"):
            continue  # the crate root and the binary (main.rs, cli/) may name every module
        if module not in rules:
            problems.append(f"{path.relative_to(ROOT)}: module `{module}` is missing from the table in ARCHITECTURE.md")
            continue
        for imported in sorted(imports_in(strip_comments(path.read_text())) - {module}):
            if imported in modules and imported not in rules[module]:
                problems.append(
                    f"{path.relative_to(ROOT)}: `{module}` may not import `{imported}` "
                    f"(ARCHITECTURE.md allows: {', '.join(sorted(rules[module])) or 'nothing'})"
                )
    return problems


def self_test():
    assert imports_in("use crate::workflow::X;") == {"workflow"}
    assert imports_in("use crate::{Host, item::Item};") == {"host", "core"}
    assert strip_comments("a // crate::queue") == "a "
    assert imports_in("crate::Item; crate::errors::error_chain") == {"core"}
    print("check-deps self-test ok")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    rules = read_table((ROOT / "ARCHITECTURE.md").read_text())
    problems = violations(rules)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check-deps: {len(problems)} import(s) break the table in ARCHITECTURE.md", file=sys.stderr)
        return 1
    print(f"check-deps: {len(rules)} modules follow the table in ARCHITECTURE.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
