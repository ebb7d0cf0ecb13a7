#!/usr/bin/env bash
# NAME
#	boot.sh - the installed units under a real systemd, in a throwaway container
# SYNOPSIS
#	tests/package/boot.sh          (SPOOLGATE_BUILD: the meson build root)
#	tests/package/boot.sh DEB      the Debian package instead (scripts/build-deb.sh)
# DESCRIPTION
#	This machine's PID 1 need not be systemd, so the test boots one:
#	an overlay of / (changes on a tmpfs) gets `meson install` of the build
#	and the user, group and spool as README.md says for an install from
#	source (or, given a DEB, `dpkg -i` of it, whose postinst makes them),
#	both units enabled and the machine's own services masked; then
#	systemd-nspawn boots it (private network, /dev/fuse bound in,
#	CAP_SYS_ADMIN kept for the FUSE mount) and, from inside, checks that
#	  * both units are active, their Type=notify status texts say
#	    "listening on 127.0.0.1:25 (2 listeners)" (MX and submission) and
#	    "mounted at ...";
#	  * smtpd runs as spoolgate with CAP_NET_BIND_SERVICE as its only
#	    capability;
#	  * the FUSE mount is seen outside spoolgate-fs's unit (the container's
#	    own mount namespace), and a message sent to root@localhost over
#	    SMTP shows in its inbox/root/;
#	  * systemctl reload makes smtpd log event=reload;
#	  * systemctl stop spoolgate-smtpd stops both (Requires=), cleanly
#	    (exit 0, event=stopped), and the mount is gone.
#	Everything happens in private mount namespaces; the container is
#	powered off (killed after a bound) and the tmpfs dropped, whatever
#	happened.  Skips (77) without root, systemd-nspawn (package
#	systemd-container), /dev/fuse or overlayfs.
# EXIT STATUS
#	0 passed, 1 failed, 77 skipped.
set -euo pipefail

log() { printf 'boot: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
skip() { log "SKIP: $*"; exit 77; }

if [ "${1:-}" = --inside ]; then
	work=$2 build=$3 deb=${4:-}
	root=$work/root
	nspawn_pid=""
	# Power the container off; if its systemd does not answer (it failed, or
	# its bus is not up yet), SIGKILL to it ends its whole PID namespace.
	# Killing nspawn alone would leave the container running.
	stop_container() {
		[ -n "$nspawn_pid" ] || return 0
		[ -n "${init:-}" ] || init=$(find_init)
		[ -n "$init" ] && timeout 20 nsenter -t "$init" -a systemctl poweroff >/dev/null 2>&1 || true
		for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || return 0; sleep 0.2; done
		[ -n "$init" ] && kill -KILL "$init" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || return 0; sleep 0.2; done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
	}
	# The container's systemd: nspawn's child, or its grandchild when nspawn forks.
	find_init() {
		local p found
		found=$(pgrep -P "$nspawn_pid" -x systemd || true)
		for p in $(pgrep -P "$nspawn_pid" || true); do
			[ -n "$found" ] && break
			found=$(pgrep -P "$p" -x systemd || true)
		done
		printf '%s' "$found"
	}
	trap 'stop_container' EXIT
	trap 'exit 1' TERM INT HUP	# meson's timeout: still power off
	in_box() { nsenter -t "$init" -a "$@"; }

	mount -t tmpfs tmpfs "$work"
	mkdir "$work/upper" "$work/work" "$root"
	mount -t overlay overlay -o lowerdir=/,upperdir="$work/upper",workdir="$work/work" "$root"
	mount -t tmpfs tmpfs /run		# nspawn's own state, private to this namespace

	# A machine without the user.
	chroot "$root" sh -c 'userdel spoolgate 2>/dev/null; groupdel spoolgate 2>/dev/null; true'
	if [ -n "$deb" ]; then
		cp "$deb" "$root/tmp/spoolgate.deb"
		chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/spoolgate.deb >"$work/install.log" 2>&1 ||
			{ cat "$work/install.log" >&2; fail "dpkg -i"; }
	else
		meson install -C "$build" --no-rebuild --destdir "$root" >"$work/install.log" 2>&1 ||
			{ cat "$work/install.log" >&2; fail "meson install"; }
	fi
	unit=$(cd "$root" && find lib usr/lib -path '*/systemd/system/spoolgate-smtpd.service' 2>/dev/null | head -1)
	[ -n "$unit" ] || fail "no spoolgate-smtpd.service installed"
	exec_start=$(sed -n 's/^ExecStart=//p' "$root/$unit")
	smtpd=${exec_start%% *} conf=${exec_start##* }
	spool=$(chroot "$root" "$smtpd" -c "$conf" -p spool.dir)
	mnt=$(chroot "$root" "$smtpd" -c "$conf" -p fs.mountpoint)
	log "installed: $smtpd -c $conf, spool $spool, mount $mnt"

	if [ -z "$deb" ]; then		# as README.md says for a source install
		chroot "$root" adduser --system --group --quiet --no-create-home --home /nonexistent spoolgate
		chroot "$root" install -d -o spoolgate -g spoolgate -m 0750 "$spool"
		users=$(chroot "$root" "$smtpd" -c "$conf" -p smtpd.auth_users)
		# Not "install /dev/null": the overlay of / has no devtmpfs, and what
		# is left at /dev/null on the root filesystem need not be empty.
		chroot "$root" sh -c 'umask 077 && : > "$1" && chown spoolgate:spoolgate "$1"' sh "$users"
	fi
	# Only what the test needs boots: the machine's own services are masked.
	for u in $(cd "$root/etc/systemd/system" && find . -path './*.wants/*' -printf '%f\n' | sort -u); do
		case $u in spoolgate-*|*.target) ;; *) ln -sfn /dev/null "$root/etc/systemd/system/$u" ;; esac
	done
	for u in console-getty.service getty@.service; do ln -sfn /dev/null "$root/etc/systemd/system/$u"; done
	systemctl --root="$root" enable spoolgate-smtpd.service spoolgate-fs.service >/dev/null 2>&1

	log "booting the container"
	systemd-nspawn --quiet --register=no --keep-unit --private-network --bind=/dev/fuse \
		--capability=CAP_SYS_ADMIN -D "$root" -b >"$work/console.log" 2>&1 &
	nspawn_pid=$!
	init=""
	for _ in $(seq 300); do
		init=$(find_init)
		[ -n "$init" ] && break
		kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/console.log" >&2; fail "systemd-nspawn ended"; }
		sleep 0.2
	done
	[ -n "$init" ] || { tail -20 "$work/console.log" >&2; fail "no systemd in the container"; }
	# Until its bus answers, then until the boot is done (running or degraded).
	state=""
	for _ in $(seq 360); do
		state=$(timeout 120 nsenter -t "$init" -a systemctl is-system-running --wait 2>&1 || true)
		case $state in *"Failed to connect"*|"") sleep 0.5 ;; *) break ;; esac
	done
	log "container's systemd: $state"

	for u in spoolgate-smtpd spoolgate-fs; do
		[ "$(in_box systemctl is-active "$u")" = active ] ||
			{ in_box systemctl status --no-pager "$u" >&2 || true; in_box journalctl --no-pager -u "$u" >&2 || true; fail "$u is not active"; }
	done
	status=$(in_box systemctl show -p StatusText --value spoolgate-smtpd)
	[ "$status" = "listening on 127.0.0.1:25 (2 listeners)" ] || fail "smtpd's status: '$status'"
	status=$(in_box systemctl show -p StatusText --value spoolgate-fs)
	[ "$status" = "mounted at $mnt" ] || fail "spoolgate-fs's status: '$status'"

	pid=$(in_box systemctl show -p MainPID --value spoolgate-smtpd)
	[ "$(in_box ps -o user= -p "$pid")" = spoolgate ] || fail "smtpd runs as $(in_box ps -o user= -p "$pid")"
	caps=$(in_box sed -n 's/^CapEff:\t//p' "/proc/$pid/status")
	[ "$caps" = 0000000000000400 ] || fail "smtpd's effective capabilities: $caps (want CAP_NET_BIND_SERVICE only)"

	in_box findmnt -n "$mnt" >/dev/null || fail "$mnt is not mounted outside spoolgate-fs's unit"
	in_box python3 - <<'PY' || fail "SMTP to 127.0.0.1:25"
import smtplib
with smtplib.SMTP('127.0.0.1', 25, timeout=30) as s:
    s.sendmail('cron@localhost', ['root@localhost'], 'Subject: booted\n\nunder systemd\n')
PY
	for _ in $(seq 50); do in_box sh -c "grep -qs 'under systemd' $mnt/inbox/root/*" && break; sleep 0.2; done
	in_box sh -c "grep -qs 'under systemd' $mnt/inbox/root/*" || fail "the message is not in $mnt/inbox/root/"
	log "active, notified, smtpd as spoolgate with one capability, mail in through the mount"

	in_box systemctl reload spoolgate-smtpd
	for _ in $(seq 50); do in_box journalctl -u spoolgate-smtpd | grep >/dev/null 'event=reload' && break; sleep 0.2; done
	in_box journalctl -u spoolgate-smtpd | grep >/dev/null 'event=reload' ||
		{ in_box journalctl --no-pager -u spoolgate-smtpd | tail -40 >&2; fail "no event=reload after systemctl reload"; }

	in_box systemctl stop spoolgate-smtpd
	for u in spoolgate-smtpd spoolgate-fs; do
		[ "$(in_box systemctl is-active "$u" || true)" = inactive ] || fail "$u still $(in_box systemctl is-active "$u")"
	done
	[ "$(in_box systemctl show -p ExecMainStatus --value spoolgate-smtpd)" = 0 ] || fail "smtpd's exit status"
	in_box journalctl -u spoolgate-smtpd | grep >/dev/null 'event=stopped' || fail "smtpd did not log event=stopped"
	! in_box findmnt -n "$mnt" >/dev/null || fail "$mnt still mounted after stop"
	log "reload and stop work; passed"
	exit 0
fi

deb=""
if [ -n "${1:-}" ]; then
	deb=$(realpath "$1")
	build=/nonexistent
else
	build=$(realpath "${SPOOLGATE_BUILD:?SPOOLGATE_BUILD: the meson build root}")
fi
[ "$(id -u)" -eq 0 ] || skip "needs root"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not installed (package systemd-container)"
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip "no overlayfs"
work=$(mktemp -d /tmp/sg-boot.XXXXXX)
trap 'rm -rf "$work"' EXIT
unshare --mount --propagation private "$(realpath "$0")" --inside "$work" "$build" "$deb"
