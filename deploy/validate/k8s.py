#!/usr/bin/env python3
"""Validates Kubernetes manifests offline.

    python k8s.py [--kubernetes-version 1.37] FILE|- ...

Each FILE is a multi-document YAML stream, typically the output of `kubectl kustomize DIR`
('-' reads standard input). Every object is checked against a schema, strictly (an unknown
field is an error):

  - built-in kinds against the Kubernetes OpenAPI schemas bundled by the PyPI package
    kubernetes-validate;
  - custom resources (KEDA, CloudNativePG, NATS JetStream controller) against the JSON Schemas in
    schemas/ beside this file, which cover the fields this project uses;
  - a kind with no schema at all is an error, so nothing passes unchecked.

Exit status: 0 when every object is valid, 1 otherwise (each problem printed), 2 on bad usage.
"""

import argparse
import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

CUSTOM = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster.json",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "cnpg-scheduledbackup.json",
    ("jetstream.nats.io/v1beta2", "Stream"): "nack-stream.json",
}


def load_custom(api_version, kind):
    name = CUSTOM.get((api_version, kind))
    if name is None:
        return None
    with open(os.path.join(HERE, "schemas", name), encoding="utf-8") as f:
        return json.load(f)


def describe(obj):
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')}/{ns + '/' if ns else ''}{name}"


def check(obj, version):
    """Problems with one object (empty when valid)."""
    if not isinstance(obj, dict):
        return [f"not a mapping: {obj!r:.80}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not api_version or not kind:
        return ["missing apiVersion or kind"]
    schema = load_custom(api_version, kind)
    if schema is not None:
        validator = jsonschema.Draft7Validator(schema)
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        ]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path) or "(root)"
        return [f"{path}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {api_version} {kind} (Kubernetes {version} or deploy/validate/schemas)"]
    return []


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.37")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    failures = objects = 0
    for path in args.files:
        try:
            if path == "-":
                docs = list(yaml.safe_load_all(sys.stdin))
            else:
                with open(path, encoding="utf-8") as f:
                    docs = list(yaml.safe_load_all(f))
        except (OSError, yaml.YAMLError) as e:
            print(f"{path}: cannot read: {e}", file=sys.stderr)
            failures += 1
            continue
        docs = [d for d in docs if d is not None]
        if not docs:
            print(f"{path}: no objects", file=sys.stderr)
            failures += 1
        for obj in docs:
            objects += 1
            problems = check(obj, args.kubernetes_version)
            for p in problems:
                print(f"{path}: {describe(obj)}: {p}", file=sys.stderr)
            failures += bool(problems)
    verdict = "valid" if failures == 0 else f"{failures} INVALID"
    print(f"{objects} objects checked against Kubernetes {args.kubernetes_version} and CRD schemas: {verdict}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
