# Sourced by scripts/test: installs tor, i2pd, obfs4proxy (for the obfs4 bridge test), a C
# compiler (for the i2pd test shim), strace and unshare (for the whole-life anonymity
# proof) with apt-get where missing, without ever letting their system services run: a
# tor or i2pd started with its default settings would join the public network.
install_network_tools() {
  local need=()
  command -v tor >/dev/null 2>&1 || need+=(tor)
  command -v tor-gencert >/dev/null 2>&1 || need+=(tor)
  command -v i2pd >/dev/null 2>&1 || need+=(i2pd)
  command -v obfs4proxy >/dev/null 2>&1 || need+=(obfs4proxy)
  command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
  command -v strace >/dev/null 2>&1 || need+=(strace)
  command -v unshare >/dev/null 2>&1 || need+=(util-linux)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      echo "note: ${need[*]} missing and cannot be installed here (needs root and apt-get);" \
           "the Tor/I2P network tests will be skipped" >&2
      return 0
    fi
    echo "installing ${need[*]} with apt-get (services kept from starting)" >&2
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
    fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need[@]}" >/dev/null || echo "warning: apt-get install ${need[*]} failed" >&2
    [ "$made_policy" = 1 ] && rm -f "$policy"
  fi
  # Where systemd runs, the packages enable their services: stop and disable them.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for unit in tor tor@default i2pd; do
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
  return 0
}
