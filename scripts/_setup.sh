# Shared set-up for scripts/test and scripts/verify-specs. Sourced, not run: it defines REPO, VENV and
# `kspec_setup`, which makes the machine ready from nothing (a fresh Debian with Python 3.11) and is cheap
# to repeat on a machine that is already set up.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO/.venv"
PYTHON=${PYTHON:-python3}
# iptables, conntrack and nfacct live in /usr/sbin, which a non-login shell may not have on PATH.
export PATH="$PATH:/usr/sbin:/sbin"

# The kernel tools the netns tests and benchmarks drive, by the Debian package that ships each.
declare -A KSPEC_TOOLS=(
  [ip]=iproute2
  [iptables-restore]=iptables
  [ip6tables-restore]=iptables
  [conntrack]=conntrack
  [nfacct]=nfacct
  [ipset]=ipset
)

_apt_install() {
  # Quietly does nothing when not root: tests that need the kernel skip with a reason instead.
  [ "$(id -u)" = 0 ] || return 0
  command -v apt-get >/dev/null || return 0
  echo "setup: apt-get install $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -qq -o DPkg::Lock::Timeout=300 update >/dev/null
  apt-get -qq -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@" >/dev/null
}

_ensure_kernel_tools() {
  local tool missing=()
  for tool in "${!KSPEC_TOOLS[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${KSPEC_TOOLS[$tool]}")
  done
  [ ${#missing[@]} -eq 0 ] || _apt_install $(printf '%s\n' "${missing[@]}" | sort -u)
}

_ensure_venv() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "setup: kspec needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1)" >&2; return 1; }
  if [ ! -x "$VENV/bin/python" ]; then
    # Debian's own python3 ships venv without ensurepip until python3-venv is installed.
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || _apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall only when the project's metadata changed: the install is editable, so source edits need none.
  local stamp="$VENV/.kspec-installed" want
  want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1) $REPO"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$REPO[test]"
    echo "$want" > "$stamp"
  fi
}

# What only the test suite needs: a headless browser that loads the HTML report (Debian's chromium).
kspec_test_tools() {
  command -v chromium >/dev/null || _apt_install chromium
}

kspec_setup() {
  _ensure_kernel_tools
  _ensure_venv
  # Prove the package imports as installed, from outside the work tree (no accidental sys.path help).
  (cd / && "$VENV/bin/python" -c 'import kspec.compiler, kspec.ingest') \
    || { echo "setup: kspec does not import from $VENV" >&2; return 1; }
}
