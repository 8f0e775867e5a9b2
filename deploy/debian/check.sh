#!/usr/bin/env bash
# Builds the Debian package with cargo-deb and checks it: the files where the README says they
# are, /etc/default/proxmox-exporter a conffile, the unit installed but not enabled or started
# by the maintainer scripts, and lintian without an error. CI passes `--profile dev` (the tests
# built it already); a release is built from the `dist` profile (the default here).
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${1:-dist}
cargo deb --locked --profile "$profile" --output target/debian/ >/dev/null
deb=$(ls -t target/debian/proxmox-exporter_*_amd64.deb | head -n 1)
echo "built $deb ($(stat -c %s "$deb") bytes)"

contents=$(dpkg-deb --contents "$deb")
missing=""
for want in \
  "-rwxr-xr-x 0/0 .* ./usr/bin/proxmox-exporter" \
  "-rw-r--r-- 0/0 .* ./etc/default/proxmox-exporter" \
  ".* ./usr/lib/systemd/system/proxmox-exporter.service" \
  ".* ./usr/share/proxmox-exporter/systemd/pve-modules.conf" \
  ".* ./usr/share/proxmox-exporter/grafana/proxmox-exporter.json" \
  ".* ./usr/share/proxmox-exporter/prometheus/proxmox-alerts.yml" \
  ".* ./usr/share/proxmox-exporter/prometheus/prometheus.yml" \
  ".* ./usr/share/doc/proxmox-exporter/copyright" \
  ".* ./usr/share/doc/proxmox-exporter/changelog.Debian.gz"; do
  printf '%s\n' "$contents" | grep -Eq -- "^$want\$" || missing="$missing  $want"$'\n'
done
if [ -n "$missing" ]; then
  echo "the package lacks:"; printf '%s' "$missing"; echo "it holds:"; printf '%s\n' "$contents"
  exit 1
fi

control=$(mktemp -d)
trap 'rm -rf "$control"' EXIT
dpkg-deb --control "$deb" "$control"
grep -qx '/etc/default/proxmox-exporter' "$control/conffiles" ||
  { echo "/etc/default/proxmox-exporter is not a conffile"; exit 1; }
# Installed, never enabled or started by the package: it has no cluster to ask until configured.
# (An upgrade re-enables a service the admin had enabled, and restarts one that runs.)
enables=$(grep -c 'deb-systemd-helper enable' "$control/postinst" || true)
guarded=$(grep -B3 'deb-systemd-helper enable' "$control/postinst" | grep -c 'was-enabled' || true)
if grep -q 'deb-systemd-invoke start' "$control/postinst" || [ "$enables" != "$guarded" ]; then
  echo "postinst enables or starts the service:"; cat "$control/postinst"; exit 1
fi
grep -q 'rm -rf /etc/proxmox-exporter' "$control/postrm" ||
  { echo "postrm does not remove /etc/proxmox-exporter on purge"; exit 1; }
echo "package contents, conffiles and maintainer scripts as documented"

# --fail-on error: warnings and informational tags are reported, errors fail.
lintian --fail-on error --tag-display-limit 0 "$deb"
echo "lintian: no error"
