"""Lints and renders the Helm chart with Helm's own SDK (PyPI `helm-python-sdk`), for the
value sets an operator would use, and checks what comes out. Run by .ci/run."""

import sys
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(__file__).parent / "proxmox-exporter"
TESTED_RULES = Path(__file__).parent.parent / "prometheus" / "proxmox-alerts.yml"

MODULES = {"default": {"user": "monitoring@pve", "token_name": "exporter", "token_value": "m0dule-s3cret"}}

CASES = {
    "token given": ({"proxmox": {"token": "s3cret"}}, {"Deployment", "Service", "Secret"}),
    "existing secret": ({"proxmox": {"existingSecret": "pve-token"}}, {"Deployment", "Service"}),
    "everything on": (
        {
            "proxmox": {"existingSecret": "pve-token", "caSecret": "pve-ca"},
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "networkPolicy": {"enabled": True},
        },
        {"Deployment", "Service", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"},
    ),
    "pve.yml only": (
        {"proxmox": {"endpoints": []}, "modules": {"config": MODULES}},
        {"Deployment", "Service", "Secret"},
    ),
    "pve.yml from a Secret, /pve targets scraped": (
        {
            "proxmox": {"endpoints": []},
            "modules": {
                "existingSecret": "pve-modules",
                "targets": [{"target": "pve1.example"}, {"target": "pve2.example", "module": "lab", "cluster": 0}],
                "allowedTargets": ["*.lab.example", "10.0.0.0/8"],
            },
            "serviceMonitor": {"enabled": True},
        },
        {"Deployment", "Service", "ServiceMonitor"},
    ),
    "both": (
        {"proxmox": {"token": "s3cret"}, "modules": {"config": MODULES}},
        {"Deployment", "Service", "Secret"},
    ),
}


def check_deployment(case: str, values: dict, doc: dict, failures: list) -> None:
    pod = doc["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container.get("env") or []}
    args = container["args"]
    flags_cluster = values.get("proxmox", {}).get("endpoints", ["default"]) != []
    modules = values.get("modules", {})
    if flags_cluster:
        if env.get("PROXMOX_EXPORTER_PROXMOX_TOKEN_ID") != "monitoring@pve!exporter":
            failures.append(f"{case}: token id {env}")
        if "--proxmox-token-file=/etc/proxmox-exporter/token/token" not in args:
            failures.append(f"{case}: no token file argument")
    elif any(k.startswith("PROXMOX_EXPORTER_PROXMOX_") for k in env) or any(
        a.startswith("--proxmox-") for a in args
    ):
        failures.append(f"{case}: flags cluster settings without proxmox.endpoints: {env} {args}")
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
    if modules:
        if "--config.file=/etc/proxmox-exporter/modules/pve.yml" not in args:
            failures.append(f"{case}: no --config.file argument")
        secret = modules.get("existingSecret") or "pve-proxmox-exporter-modules"
        if volumes.get("modules") != secret:
            failures.append(f"{case}: modules volume {volumes}, expected Secret {secret}")
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        if not mounts.get("modules", {}).get("readOnly"):
            failures.append(f"{case}: pve.yml not mounted read-only")
        # The modules may be sent only to the targets scraped, and those listed besides.
        allowed = [t["target"] for t in modules.get("targets", [])] + modules.get("allowedTargets", [])
        got = env.get("PROXMOX_EXPORTER_ALLOWED_TARGETS")
        if (got.split(",") if got else []) != allowed:
            failures.append(f"{case}: allowed targets {got!r}, expected {allowed}")
    if ("checksum/modules" in (doc["spec"]["template"]["metadata"].get("annotations") or {})) != (
        "config" in modules
    ):
        failures.append(f"{case}: checksum annotation should follow an inline pve.yml")
    if "s3cret" in yaml.safe_dump(doc) or "m0dule-s3cret" in yaml.safe_dump(doc):
        failures.append(f"{case}: a secret is in the Deployment")


def main() -> int:
    failures = []
    report = helm.lint(str(CHART), {"proxmox": {"token": "s3cret"}}, strict=True)
    for message in report.get("messages") or []:
        if message.get("severity", 0) >= 2:
            failures.append(f"lint: {message}")
    chart = helm.Chart.load(str(CHART))
    for case, (values, kinds) in CASES.items():
        manifests = chart.render(values, name="pve", namespace="monitoring", is_install=True)
        docs = [
            doc
            for text in manifests.values()
            for doc in yaml.safe_load_all(text)
            if doc
        ]
        got = {doc["kind"] for doc in docs}
        if got != kinds:
            failures.append(f"{case}: kinds {sorted(got)}, expected {sorted(kinds)}")
        for doc in docs:
            if doc["kind"] == "Deployment":
                check_deployment(case, values, doc, failures)
            if doc["kind"] == "Secret" and "pve.yml" in doc.get("stringData", {}):
                if yaml.safe_load(doc["stringData"]["pve.yml"]) != MODULES:
                    failures.append(f"{case}: the module Secret does not hold the given pve.yml")
            if doc["kind"] == "ServiceMonitor":
                pve = [e for e in doc["spec"]["endpoints"] if e["path"] == "/pve"]
                targets = values.get("modules", {}).get("targets", [])
                expected = [
                    (
                        {
                            "target": [t["target"]],
                            "module": [t.get("module", "default")],
                            "cluster": [str(t.get("cluster", "1"))],
                            "node": [str(t.get("node", "1"))],
                        },
                        [{"targetLabel": "instance", "replacement": t["target"]}],
                    )
                    for t in targets
                ]
                if [(e["params"], e["relabelings"]) for e in pve] != expected:
                    failures.append(f"{case}: /pve endpoints {pve}, expected {expected}")
            if doc["kind"] == "PrometheusRule":
                rules = doc["spec"]["groups"][0]["rules"]
                tested = yaml.safe_load(TESTED_RULES.read_text())["groups"][0]["rules"]
                if rules != tested or "{{ $labels.name }}" not in yaml.safe_dump(doc):
                    failures.append(f"{case}: PrometheusRule rules mangled")
    # The backup age threshold is a value of its own.
    manifests = chart.render(
        {"proxmox": {"token": "s3cret"}, "prometheusRule": {"enabled": True, "backupMaxAgeHours": 50}},
        name="pve", namespace="monitoring", is_install=True,
    )
    rendered = "".join(manifests.values())
    if "(50 * 3600)" not in rendered or "(26 * 3600)" in rendered:
        failures.append("prometheusRule.backupMaxAgeHours does not reach ProxmoxGuestBackupTooOld")
    try:
        chart.render({}, name="pve", namespace="monitoring", is_install=True)
        failures.append("no token and no secret: rendered anyway")
    except Exception as error:  # Helm's render error names the missing setting
        if "proxmox.token" not in str(error):
            failures.append(f"no token: unexpected error {error}")
    try:
        chart.render({"proxmox": {"endpoints": []}}, name="pve", namespace="monitoring", is_install=True)
        failures.append("no endpoints and no modules: rendered anyway")
    except Exception as error:
        if "modules" not in str(error):
            failures.append(f"no endpoints and no modules: unexpected error {error}")
    for failure in failures:
        print(failure)
    print(f"helm chart: {len(CASES)} value sets rendered, lint clean" if not failures else "helm chart: FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
