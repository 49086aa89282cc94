"""The Ingresses of a mixed overlay, as nginx configuration.

The overlay is rendered with ``kubectl kustomize`` (the same build tests/k8s
validates), so the path list the harness routes by is the one in
k8s/kotte-server/ingress.yaml, not a copy. The locations are written as
ingress-nginx writes them for an Ingress of class nginx:

* ``pathType: Exact`` -> ``location = PATH``;
* ``pathType: Prefix`` -> ``location = PATH`` and ``location PATH/`` (a
  prefix matches by whole path elements: /api/v1/connections takes
  /api/v1/connections and /api/v1/connections/ID, not /api/v1/connectionsX);
* Ingresses of one host merge into one server. nginx itself then picks an
  exact location first and otherwise the longest prefix, which is the
  precedence the Ingress API gives Exact and Prefix paths.

:func:`expected_service` resolves a path by the same rules without nginx,
so the harness can check that nginx sent each request where the Ingress says.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def ingress_paths(overlay: str) -> tuple[str, list[dict]]:
    """(host, paths) of the overlay's Ingress ``kotte`` host, across every
    Ingress that serves it; each path is {path, pathType, service}."""
    p = subprocess.run(["kubectl", "kustomize", str(ROOT / overlay)], capture_output=True,
                       text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay}: {p.stderr.strip()[-2000:]}")
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    ingresses = [d for d in docs if d.get("kind") == "Ingress"]
    main = next(d for d in ingresses if d["metadata"]["name"] == "kotte")
    host = main["spec"]["rules"][0].get("host", "")
    paths = []
    for ing in ingresses:
        for rule in ing["spec"].get("rules", []):
            if rule.get("host", "") != host:
                continue
            for x in rule.get("http", {}).get("paths", []):
                paths.append({"path": x["path"], "pathType": x["pathType"],
                              "service": x["backend"]["service"]["name"]})
    return host, paths


def expected_service(paths: list[dict], path: str) -> str | None:
    for x in paths:
        if x["pathType"] == "Exact" and x["path"] == path:
            return x["service"]
    best = None
    for x in paths:
        pre = x["path"].rstrip("/")
        if x["pathType"] == "Prefix" and (pre == "" or path == pre or path.startswith(pre + "/")):
            if best is None or len(pre) > len(best["path"].rstrip("/")):
                best = x
    return best["service"] if best else None


def locations(paths: list[dict], upstream_of: dict[str, str]) -> str:
    """nginx location blocks; @p upstream_of maps a Service to an upstream
    name (Services without one, the frontend here, get a plain 404)."""
    out, seen = [], set()

    def loc(modifier: str, path: str, service: str) -> None:
        key = (modifier, path)
        if key in seen:
            return
        seen.add(key)
        target = (f"proxy_pass http://{upstream_of[service]};" if service in upstream_of
                  else "return 404;")
        out.append(f"location {modifier}{path} {{ {target} }}")

    for x in paths:
        pre = x["path"].rstrip("/") or "/"
        loc("= ", x["path"], x["service"])
        if x["pathType"] == "Prefix":
            loc("", pre if pre == "/" else pre + "/", x["service"])
    return "\n        ".join(out)
