#!/usr/bin/env python3
"""Count the public items reachable from a crate root in rustdoc JSON.

Counted: every module (but the root), struct, enum, union, trait, function, constant, static,
type alias and macro reachable by a public path (re-exports followed, each item once), plus the
public inherent methods and associated constants of reachable types. Not counted: fields, enum
variants, trait-impl methods (the same rules as the `grep '^\s*pub (fn|struct|...)'` count).

Usage (rustdoc JSON needs a nightly toolchain; not part of CI):
    cargo +nightly rustdoc -p walden-core --all-features -- -Zunstable-options --output-format json
    python3 scripts/count-public-api.py target/doc/walden_core.json walden_core::raw [--list]
"""
import json, sys
from collections import Counter

doc = json.load(open(sys.argv[1]))
idx = doc["index"]
seen, kinds, paths = set(), Counter(), {}
prefix = sys.argv[2] if len(sys.argv) > 2 else None
# usage: count-public-api.py target/doc/walden_core.json [walden_core::raw] [--list]

def kind(it):
    return next(iter(it["inner"])) if isinstance(it["inner"], dict) else it["inner"]

def visit(i, path, count=True):
    i = str(i)
    if i not in idx:
        return
    it = idx[i]
    k = kind(it)
    inner = it["inner"][k] if isinstance(it["inner"], dict) else None
    if k == "use":
        tgt = inner.get("id")
        if tgt is None:
            return
        tk = kind(idx[str(tgt)]) if str(tgt) in idx else None
        if inner.get("is_glob") and tk == "module":
            for c in idx[str(tgt)]["inner"]["module"]["items"]:
                visit(c, path)
        else:
            visit(tgt, path + "::" + inner["name"])
        return
    if it.get("visibility") != "public" and i != str(doc["root"]):
        return
    if i in seen:
        return
    seen.add(i)
    if k != "module" or i != str(doc["root"]):
        kinds[k] += 1
        paths[i] = path
    if k == "module":
        for c in inner["items"]:
            c_it = idx.get(str(c))
            if c_it and kind(c_it) == "use":
                visit(c, path)  # the re-export names itself
            else:
                visit(c, path + "::" + ((c_it or {}).get("name") or "?"))
    elif k in ("struct", "enum", "union"):
        for imp in inner.get("impls", []):
            im = idx.get(str(imp))
            if not im:
                continue
            iv = im["inner"]["impl"]
            if iv.get("trait") is not None or iv.get("blanket_impl") is not None or iv.get("is_synthetic"):
                continue
            for a in iv["items"]:
                a_it = idx.get(str(a))
                if a_it and a_it.get("visibility") == "public" and str(a) not in seen:
                    seen.add(str(a))
                    kinds["method/assoc"] += 1
                    paths[str(a)] = path + "::" + a_it["name"]

visit(doc["root"], "walden_core")
total = sum(kinds.values())
print(f"reachable public items: {total}")
for k, n in kinds.most_common():
    print(f"  {k}: {n}")
if "--list" in sys.argv:
    for p in sorted(paths.values()):
        print(p)
if prefix and prefix != "--list":
    sub = [p for p in paths.values() if p.startswith(prefix)]
    print(f"under {prefix}: {len(sub)}; outside: {total - len(sub)}")
