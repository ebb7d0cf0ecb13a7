#!/usr/bin/env bash
# NAME
#	install.sh - meson install puts everything in place; units and manual pages check out
# SYNOPSIS
#	tests/package/install.sh     (SPOOLGATE_BUILD: the meson build root)
# DESCRIPTION
#	Runs `meson install --destdir` into a temporary directory and checks
#	the tree: both daemons and spoolgate-newaliases in sbin/, the two systemd units, the eight manual
#	pages in man1/ man5/ man8/, the example configuration in
#	etc/spoolgate/.  Then:
#	  * the installed configuration is read by the installed daemon
#	    (spoolgate-smtpd -p) and names the system's spool, port 25 and
#	    the mountpoint under /run;
#	  * every manual page renders without a warning: mandoc -Tlint,
#	    groff -ww, and man --warnings -l;
#	  * systemd-analyze verify accepts both units (their ExecStart moved
#	    into the temporary tree, MANPATH on its manual pages, so
#	    Documentation= is checked too);
#	  * spoolgate-fs.service uses none of the settings that give a service
#	    its own mount namespace: the FUSE mount made there would be seen
#	    by nobody else;
#	  * systemd-analyze security scores both units (printed; README.md
#	    records them) and the score of each may not get worse than the
#	    bound below.
#	Skips (77) only when systemd-analyze is not installed.
# EXIT STATUS
#	0 passed, 1 failed, 77 skipped.
set -euo pipefail

build=${SPOOLGATE_BUILD:?SPOOLGATE_BUILD: the meson build root}
max_exposure_smtpd=2.0		# systemd-analyze security, 0 (best) .. 10
max_exposure_fs=5.0
log() { printf 'install: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

command -v systemd-analyze >/dev/null || { log "SKIP: systemd-analyze is not installed (package systemd)"; exit 77; }

dest=$(mktemp -d /tmp/sg-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --no-rebuild --destdir "$dest" >"$dest.log" 2>&1 || { cat "$dest.log" >&2; rm -f "$dest.log"; fail "meson install"; }
rm -f "$dest.log"
log "installed tree:"
(cd "$dest" && find . -type f | sort) >&2

# one FILE-PATTERN: the single installed file whose path matches, else fail.
one() {
	local found
	found=$(cd "$dest" && find . -type f -path "$1" | sed 's|^\.||')
	[ -n "$found" ] || fail "nothing installed as $1"
	[ "$(printf '%s\n' "$found" | wc -l)" -eq 1 ] || fail "more than one $1: $found"
	printf '%s\n' "$found"
}
smtpd=$(one '*/sbin/spoolgate-smtpd')
one '*/sbin/spoolgate-fs' >/dev/null
one '*/sbin/spoolgate-newaliases' >/dev/null
conf=$(one '*/etc/spoolgate/spoolgate.conf')
units=()
for u in spoolgate-smtpd.service spoolgate-fs.service; do
	units+=("$(one "*/systemd/system/$u")")
done
mans=()
for m in man8/spoolgate.8 man8/spoolgate-smtpd.8 man8/spoolgate-fs.8 man5/spoolgate.conf.5 \
    man1/spoolgate-sendmail.1 man1/spoolgate-mailq.1 man8/spoolgate-passwd.8 man8/spoolgate-newaliases.8; do
	mans+=("$(one "*/share/man/$m")")
done
mandir=$(dirname "$(dirname "$dest${mans[0]}")")

# ---- the installed configuration, read by the installed daemon
value() { "$dest$smtpd" -c "$dest$conf" -p "$1"; }
[[ $(value spool.dir) == */spool/spoolgate ]] || fail "spool.dir is $(value spool.dir)"
[ "$(value smtpd.listen)" = 127.0.0.1:25 ] || fail "smtpd.listen is $(value smtpd.listen)"
[ "$(value fs.mountpoint)" = /run/spoolgate/mnt ] || fail "fs.mountpoint is $(value fs.mountpoint)"
[ "$(value spool.user)" = spoolgate ] || fail "spool.user is $(value spool.user)"
[ -z "$(value relay.smarthost)" ] || fail "relay.smarthost is $(value relay.smarthost), not MX"
grep -q "ExecStart=$smtpd -c ${conf}\$" "$dest${units[0]}" || fail "the smtpd unit does not start $smtpd -c $conf"

# ---- manual pages
for m in "${mans[@]}"; do
	out=$(groff -ww -z -mandoc "$dest$m" 2>&1) && [ -z "$out" ] || fail "groff -ww $m: $out"
	out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$dest$m" 2>&1 >/dev/null) && [ -z "$out" ] ||
		fail "man --warnings -l $m: $out"
	if command -v mandoc >/dev/null; then
		out=$(mandoc -Tlint -W warning "$dest$m" 2>&1) || fail "mandoc -Tlint $m: $out"
	fi
done
log "manual pages: ${#mans[@]} render without warnings"

# ---- units
check=$dest/units
mkdir "$check"
sbindir=$(dirname "$smtpd")
for u in "${units[@]}"; do
	sed "s|$sbindir/|$dest$sbindir/|g" "$dest$u" >"$check/$(basename "$u")"
done
out=$(cd "$check" && MANPATH=$mandir systemd-analyze verify "$check"/*.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
log "systemd-analyze verify: both units pass"

for opt in ProtectSystem ProtectHome PrivateTmp PrivateDevices PrivateMounts PrivateNetwork PrivateUsers \
    ReadWritePaths ReadOnlyPaths InaccessiblePaths TemporaryFileSystem BindPaths BindReadOnlyPaths \
    ProtectKernelTunables ProtectKernelModules ProtectKernelLogs ProtectControlGroups ProtectProc ProcSubset \
    ProtectHostname MountFlags RootDirectory RootImage; do
	! grep -q "^$opt=" "$check/spoolgate-fs.service" ||
		fail "spoolgate-fs.service sets $opt=: its mount would stay inside the unit's namespace"
done

# security UNIT MAX: print the findings, check the overall exposure.
security() {
	local unit=$1 max=$2 out score
	out=$(systemd-analyze security --offline=yes --no-pager "$check/$unit" 2>&1) || true
	printf '%s\n' "$out" | grep -E '^✗|Overall' >&2 || true
	score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	[ -n "$score" ] || fail "systemd-analyze security $unit: no score in: $out"
	log "systemd-analyze security $unit: $score (at most $max)"
	awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' || fail "$unit: exposure $score is above $max"
}
security spoolgate-smtpd.service "$max_exposure_smtpd"
security spoolgate-fs.service "$max_exposure_fs"
log "passed"
