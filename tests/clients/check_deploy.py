"""Checks the deployment files offline (run by tests/server/deploy.rs):

- compose.yaml parses; every build context, Dockerfile stage, bind-mounted file and named
  volume it names exists; every image it pulls has a pinned tag;
- the Kubernetes ConfigMap's speech.toml is written to argv[1] (the Rust test then has the
  server itself check it).

Prints one line per problem and exits 1 if there is any.
"""
import pathlib
import re
import sys

import yaml

root = pathlib.Path(__file__).resolve().parents[2]
problems = []

compose = yaml.safe_load((root / "compose.yaml").read_text())
declared_volumes = set((compose.get("volumes") or {}).keys())
for name, service in compose["services"].items():
    build = service.get("build")
    if build:
        context = root / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not dockerfile.is_file():
            problems.append(f"{name}: no Dockerfile at {dockerfile}")
        elif build.get("target"):
            stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I)
            if build["target"] not in stages:
                problems.append(f"{name}: Dockerfile has no stage {build['target']} (stages: {stages})")
    else:
        image = service.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        if not tag or tag == "latest":
            problems.append(f"{name}: image {image!r} is not pinned to a version")
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith("."):
            if not (root / source).exists():
                problems.append(f"{name}: mounts {source}, which is not in the repository")
        elif source not in declared_volumes:
            problems.append(f"{name}: volume {source} is not declared")

configmap = yaml.safe_load((root / "deploy/k8s/configmap.yaml").read_text())
pathlib.Path(sys.argv[1]).write_text(configmap["data"]["speech.toml"])

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
