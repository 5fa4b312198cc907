"""The deployment examples the playbook points to are well formed and say what it says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
CRONJOB = ROOT / "docs" / "kubernetes" / "recovery-cronjob.yaml"
PLAYBOOK = (ROOT / "docs" / "RECOVERY_PLAYBOOK.md").read_text()


def test_the_cronjob_never_overlaps_never_retries_and_ends_a_hung_run() -> None:
    job = yaml.safe_load(CRONJOB.read_text())
    spec = job["spec"]
    template = spec["jobTemplate"]["spec"]

    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "CronJob")
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 30
    assert template["backoffLimit"] == 0
    assert template["activeDeadlineSeconds"] == 300
    assert template["template"]["spec"]["restartPolicy"] == "Never"
    [container] = template["template"]["spec"]["containers"]
    assert container["args"] == ["recover"]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["RECOVERY_DATABASE_URL"]["valueFrom"]  # never inline
    assert env["RECOVERY_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    volumes = {v["name"]: v for v in template["template"]["spec"]["volumes"]}
    assert (
        "hostPath" in volumes["state"]
    )  # outlives the pod: records kept while the database is away


def test_the_playbook_names_the_manifest_and_its_settings() -> None:
    assert (
        "docs/kubernetes/recovery-cronjob.yaml" in PLAYBOOK
        or "kubernetes/recovery-cronjob.yaml" in PLAYBOOK
    )
    for setting in (
        "concurrencyPolicy",
        "backoffLimit",
        "startingDeadlineSeconds",
        "activeDeadlineSeconds",
    ):
        assert setting in PLAYBOOK
    assert re.search(r"RandomizedDelaySec=\d+s", PLAYBOOK)
