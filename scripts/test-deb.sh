#!/usr/bin/env bash
# scripts/test-deb.sh: install the built package in a throwaway root, use it, purge it.
#
#   scripts/test-deb.sh [DEB]        (default: build-deb/spoolgate_*.deb)
#
# The root is an overlay of this machine's / (changes go to a tmpfs) in
# private mount, network and PID namespaces, so the machine, its users and
# its port 25 are never touched.  In it, without the user "spoolgate"
# (removed first, as on a fresh machine):
#   1. dpkg -i: the user and group exist, /var/spool/spoolgate is theirs
#      (0750), the configuration passes spoolgate-smtpd -n, man finds the
#      pages, the units are installed and not enabled;
#   2. the daemons run as their units run them (no systemd here): smtpd as
#      the unit's User= with its one ambient capability, no new privileges,
#      on 127.0.0.1:25; spoolgate-fs as root with the unit's bounding set;
#      a message to root@localhost over SMTP shows in the mount's inbox/root/;
#   3. dpkg --purge: nothing of the package is left (no file or directory
#      named spoolgate among what the test changed, no user, no group).
# Needs root.  Exit status 0 passed, 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (namespaces, overlay)"

if [ "${1:-}" = --inside ]; then
	root=$2 deb=$3 upper=$4
	# The unit's settings, read from the installed units themselves.
	unit_value() { sed -n "s/^$2=//p" "$root/lib/systemd/system/$1" | tail -1; }
	in_root() { chroot "$root" "$@"; }

	ip link set lo up
	mount -t proc proc "$root/proc"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs tmpfs "$root/run"
	mount -t tmpfs tmpfs "$root/tmp"
	cp "$deb" "$root/tmp/spoolgate.deb"
	in_root sh -c 'userdel spoolgate 2>/dev/null; groupdel spoolgate 2>/dev/null; true'
	in_root getent passwd spoolgate >/dev/null && fail "could not remove the user before the test"

	echo "test-deb: dpkg -i" >&2
	in_root env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/spoolgate.deb >&2
	in_root getent passwd spoolgate >/dev/null || fail "no user spoolgate after install"
	in_root getent group spoolgate >/dev/null || fail "no group spoolgate after install"
	[ "$(in_root stat -c '%U:%G %a' /var/spool/spoolgate)" = "spoolgate:spoolgate 750" ] ||
		fail "spool: $(in_root stat -c '%U:%G %a' /var/spool/spoolgate)"
	in_root /usr/sbin/spoolgate-smtpd -c /etc/spoolgate/spoolgate.conf -n >&2
	for page in spoolgate.8 spoolgate-smtpd.8 spoolgate-fs.8 spoolgate.conf.5; do
		in_root man -w "${page%.*}" >/dev/null || fail "man does not find $page"
	done
	for u in spoolgate-smtpd.service spoolgate-fs.service; do
		[ -f "$root/lib/systemd/system/$u" ] || fail "$u not installed"
		[ ! -e "$root/etc/systemd/system/multi-user.target.wants/$u" ] || fail "$u enabled by the package"
	done

	echo "test-deb: the daemons, as their units run them" >&2
	user=$(unit_value spoolgate-smtpd.service User)
	caps=$(unit_value spoolgate-smtpd.service AmbientCapabilities | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
	fscaps=$(unit_value spoolgate-fs.service CapabilityBoundingSet | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
	chroot "$root" setpriv --reuid "$user" --regid "$user" --init-groups --no-new-privs \
		--inh-caps "-all,$caps" --ambient-caps "-all,$caps" --bounding-set "-all,$caps" \
		/usr/sbin/spoolgate-smtpd -c /etc/spoolgate/spoolgate.conf 2>"$root/tmp/smtpd.log" &
	smtpd=$!
	chroot "$root" setpriv --no-new-privs --bounding-set "-all,$fscaps" \
		/usr/sbin/spoolgate-fs -c /etc/spoolgate/spoolgate.conf 2>"$root/tmp/fs.log" &
	fs=$!
	for _ in $(seq 100); do
		grep -q event=listening "$root/tmp/smtpd.log" && grep -q event=mounted "$root/tmp/fs.log" && break
		sleep 0.1
	done
	grep -q event=listening "$root/tmp/smtpd.log" || { cat "$root/tmp/smtpd.log" >&2; fail "smtpd did not listen"; }
	grep -q event=mounted "$root/tmp/fs.log" || { cat "$root/tmp/fs.log" >&2; fail "spoolgate-fs did not mount"; }
	grep -q "event=privileges" "$root/tmp/smtpd.log" && fail "smtpd started as root (the unit runs it as $user)"
	python3 - <<'PY'
import smtplib
with smtplib.SMTP('127.0.0.1', 25, timeout=10) as s:
    s.sendmail('cron@localhost', ['root@localhost'], 'Subject: from the package test\n\nhello\n')
PY
	for _ in $(seq 50); do
		[ -n "$(ls "$root/run/spoolgate/mnt/inbox/root/" 2>/dev/null)" ] && break
		sleep 0.1
	done
	grep -rq "from the package test" "$root/run/spoolgate/mnt/inbox/root/" || fail "the message is not in the mount's inbox/root/"
	kill -TERM "$fs" "$smtpd"
	wait "$fs" || fail "spoolgate-fs exit status $?"
	wait "$smtpd" || fail "spoolgate-smtpd exit status $?"
	echo "test-deb: smtpd received, spoolgate-fs showed it, both stopped cleanly" >&2

	echo "test-deb: dpkg --purge" >&2
	in_root env DEBIAN_FRONTEND=noninteractive dpkg --purge spoolgate >&2
	in_root getent passwd spoolgate >/dev/null && fail "user spoolgate left after purge"
	in_root getent group spoolgate >/dev/null && fail "group spoolgate left after purge"
	# What the test changed is in the overlay's upper directory (whiteouts,
	# character devices, stand for removals of the machine's own files).
	left=$(cd "$upper" && find . -name '*spoolgate*' ! -type c | grep -v '^\./var/log/' || true)
	[ -z "$left" ] || fail "left after purge: $left"
	echo "test-deb: passed" >&2
	exit 0
fi

deb=$(realpath "${1:-$(ls build-deb/spoolgate_*.deb | head -1)}")
[ -f "$deb" ] || fail "no package: run scripts/build-deb.sh first"
work=$(mktemp -d /tmp/sg-debroot.XXXXXX)
trap 'umount -l "$work" 2>/dev/null; rm -rf "$work"' EXIT
mount -t tmpfs tmpfs "$work"
mkdir "$work/upper" "$work/work" "$work/root"
unshare --mount --net --pid --fork --propagation private bash -c '
	set -e
	mount -t overlay overlay -o lowerdir=/,upperdir="$1/upper",workdir="$1/work" "$1/root"
	exec "$2" --inside "$1/root" "$3" "$1/upper"' _ "$work" "$(realpath "$0")" "$deb"
