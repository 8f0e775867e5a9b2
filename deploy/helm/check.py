"""Lints and renders the Helm chart with Helm's own SDK (PyPI `helm-python-sdk`), for the
value sets an operator would use, and checks what comes out. Run by .ci/run."""

import sys
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(__file__).parent / "proxmox-exporter"
TESTED_RULES = Path(__file__).parent.parent / "prometheus" / "proxmox-alerts.yml"

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
}


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
                container = doc["spec"]["template"]["spec"]["containers"][0]
                env = {e["name"]: e["value"] for e in container["env"]}
                if env["PROXMOX_EXPORTER_PROXMOX_TOKEN_ID"] != "monitoring@pve!exporter":
                    failures.append(f"{case}: token id {env}")
                if "--proxmox-token-file=/etc/proxmox-exporter/token/token" not in container["args"]:
                    failures.append(f"{case}: no token file argument")
                if "s3cret" in yaml.safe_dump(doc):
                    failures.append(f"{case}: the secret is in the Deployment")
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
    for failure in failures:
        print(failure)
    print(f"helm chart: {len(CASES)} value sets rendered, lint clean" if not failures else "helm chart: FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
