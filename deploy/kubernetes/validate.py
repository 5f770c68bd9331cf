#!/usr/bin/env python3
"""Validates the Kubernetes manifests offline; exits 1 naming every problem, 0 when all pass.

- every resource against the Kubernetes schemas of KUBERNETES_VERSION (kubernetes-validate, strict: an
  unknown field is an error), the ServiceMonitor against schemas/servicemonitor-v1.json;
- every kustomization's resources and patches exist; with kubectl present, each one also renders
  (`kubectl kustomize`) and its output validates;
- `ssegate check` on the `ssegate.yaml` of every ConfigMap (its errors' lines count within that key).

usage: deploy/kubernetes/validate.py [--ssegate BINARY] [DIR]   (DIR: default this script's folder)
needs: pip install kubernetes-validate==1.37.0 (it brings PyYAML and jsonschema)
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import yaml

KUBERNETES_VERSION = "1.33.0"
HERE = os.path.dirname(os.path.abspath(__file__))
CUSTOM_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json"}


def manifests(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "schemas")
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")):
                yield os.path.join(folder, name)


def kubernetes_validate(paths):
    """Built-in kinds, strict. One run for all files; its ERROR lines are the problems."""
    if not paths:
        return []
    run = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--no-warn", "--quiet", "-k", KUBERNETES_VERSION, *paths],
        capture_output=True, text=True)
    lines = [l for l in (run.stdout + run.stderr).splitlines() if l.strip()]
    if run.returncode != 0 and not lines:
        lines = [f"kubernetes-validate exited {run.returncode}"]
    return lines if run.returncode != 0 else []


def check_kustomization(path, document):
    problems = []
    folder = os.path.dirname(path)
    for key in ("resources", "components"):
        for entry in document.get(key) or []:
            if "://" not in entry and not os.path.exists(os.path.join(folder, entry)):
                problems.append(f"{path}: {key} names '{entry}', which does not exist")
    for patch in document.get("patches") or []:
        target = patch.get("path") if isinstance(patch, dict) else patch
        if target and not os.path.exists(os.path.join(folder, target)):
            problems.append(f"{path}: patch '{target}' does not exist")
    return problems


def check_config(path, document, ssegate, scratch):
    text = (document.get("data") or {}).get("ssegate.yaml")
    if text is None:
        return []
    relative = os.path.relpath(path, HERE).replace(os.sep, "_")
    config = os.path.join(scratch, f"{relative}#ssegate.yaml")
    with open(config, "w") as handle:
        handle.write(text)
    run = subprocess.run([ssegate, "check", "--config", config], capture_output=True, text=True)
    if run.returncode == 0:
        return []
    # Point each FILE:LINE:COLUMN at the ConfigMap's own file: the block starts after `ssegate.yaml: |`.
    lines = open(path).read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip().startswith("ssegate.yaml:")), None)
    indent = 0
    if start is not None:
        body = next((l for l in lines[start + 1:] if l.strip()), "")
        indent = len(body) - len(body.lstrip(" "))

    def located(match):
        if start is None:
            return match.group(0)
        return f"{path}:{start + 1 + int(match.group(1))}:{indent + int(match.group(2))}:"

    output = re.sub(re.escape(config) + r":(\d+):(\d+):", located, run.stdout + run.stderr)
    return [f"{path}: data.ssegate.yaml fails `ssegate check`:"] + ["  " + l for l in output.splitlines()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ssegate", default=shutil.which("ssegate") or "ssegate")
    parser.add_argument("root", nargs="?", default=HERE)
    args = parser.parse_args()
    problems, plain, checked = [], [], 0
    with tempfile.TemporaryDirectory() as scratch:
        for path in manifests(args.root):
            try:
                documents = [d for d in yaml.safe_load_all(open(path)) if d is not None]
            except yaml.YAMLError as error:
                problems.append(f"{path}: not YAML: {error}")
                continue
            custom = False
            for document in documents:
                kind = (document.get("apiVersion"), document.get("kind"))
                if kind[1] == "Kustomization":
                    problems += check_kustomization(path, document)
                    custom = True
                elif kind in CUSTOM_SCHEMAS:
                    schema = json.load(open(os.path.join(HERE, "schemas", CUSTOM_SCHEMAS[kind])))
                    for error in jsonschema.Draft7Validator(schema).iter_errors(document):
                        where = ".".join(str(p) for p in error.absolute_path) or "(top)"
                        problems.append(f"{path}: {kind[1]} {where}: {error.message}")
                    custom = True
                elif kind[1] == "ConfigMap":
                    problems += check_config(path, document, args.ssegate, scratch)
            checked += 1
            if not custom:
                plain.append(path)
        kubectl = shutil.which("kubectl")
        if kubectl:
            for path in manifests(args.root):
                if os.path.basename(path) != "kustomization.yaml":
                    continue
                folder = os.path.dirname(path)
                run = subprocess.run([kubectl, "kustomize", folder], capture_output=True, text=True)
                if run.returncode != 0:
                    problems.append(f"{folder}: kubectl kustomize failed: {run.stderr.strip()}")
                    continue
                name = "rendered-" + os.path.relpath(folder, args.root).replace(os.sep, "_") + ".yaml"
                builtin = [d for d in yaml.safe_load_all(run.stdout)
                           if d and (d.get("apiVersion"), d.get("kind")) not in CUSTOM_SCHEMAS]
                with open(os.path.join(scratch, name), "w") as handle:
                    yaml.safe_dump_all(builtin, handle)
                plain.append(os.path.join(scratch, name))
        # One run for everything: loading the schemas is most of its time.
        problems += [l.replace(scratch + "/", "") for l in kubernetes_validate(plain)]
    for problem in problems:
        print(problem)
    print(f"{checked} manifests, Kubernetes {KUBERNETES_VERSION}, kubectl kustomize "
          f"{'rendered' if shutil.which('kubectl') else 'not installed, skipped'}: "
          f"{'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
