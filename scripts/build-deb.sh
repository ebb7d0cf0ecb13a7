#!/usr/bin/env bash
# scripts/build-deb.sh: build the Debian package from the working tree and check it.
#
#   scripts/build-deb.sh [OUTDIR]       (default OUTDIR: build-deb/)
#
# Copies the files git knows of (committed or not, minus what .gitignore
# drops) into a temporary directory, installs the build dependencies that
# are missing (debian/control, through apt), runs `dpkg-buildpackage -us -uc
# -b` there and `lintian` on the result, and leaves the .deb, the .changes
# and lintian's report (lintian.txt) in OUTDIR.  Fails when lintian reports
# an error; warnings are printed (README.md, "The Debian package", says
# which remain and why).  scripts/test-deb.sh installs and purges the .deb
# in a throwaway root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

out=$(realpath -m "${1:-build-deb}")
deps_install_list debhelper dpkg-dev fakeroot lintian
work=$(mktemp -d /tmp/sg-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
src=$work/spoolgate-$version
mkdir "$src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src"

# Build-Depends that are missing, through apt (scripts/deps.sh).
missing=$(cd "$src" && dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p' |
	sed 's/([^)]*)//g; s/|[^ ]*//g') || true
# shellcheck disable=SC2086
[ -z "${missing// /}" ] || deps_install_list $missing

echo "build-deb: dpkg-buildpackage in $src" >&2
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
mkdir -p "$out"
cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out"/
changes=$(ls "$out"/spoolgate_"$version"_*.changes)

echo "build-deb: lintian $changes" >&2
rc=0
lintian --info --display-info --pedantic "$changes" >"$out/lintian.txt" 2>&1 || rc=$?
cat "$out/lintian.txt" >&2
if grep -q '^E: ' "$out/lintian.txt"; then
	echo "build-deb: FAIL: lintian reports errors (above)" >&2
	exit 1
fi
[ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || { echo "build-deb: lintian failed to run (status $rc)" >&2; exit 1; }
echo "build-deb: $(ls "$out"/*.deb) ($(grep -c '^W: ' "$out/lintian.txt" || true) lintian warnings)" >&2
