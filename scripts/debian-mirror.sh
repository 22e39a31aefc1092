# Sourced by setup-arm64.sh and setup-armhf.sh: the Debian mirror their roots come from.
# $EDGE_AD_DEBIAN_MIRROR if set; else the mirror apt already uses here (a proxy or a local
# mirror in CI); else Debian's CDN.
mirror() {
  if [ -n "${EDGE_AD_DEBIAN_MIRROR:-}" ]; then echo "$EDGE_AD_DEBIAN_MIRROR"; return; fi
  local url
  url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v "^[[:space:]]*#" \
    | grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
  echo "${url:-http://deb.debian.org/debian}"
}
