#!/usr/bin/env bash
# scripts/deps.sh: install what spoolgate needs to build, run and test, where missing.
# Sourced by ./run and ./test.  Debian 12 packages only; needs root (or sudo).
#
#   deps_install       apt-get install what ./run needs, where dpkg does not show it installed
#   deps_install_tests the same with what ./test needs too (the suites' peers and tools)
#   deps_install_fuzz  the same for what ./test --fuzz needs (clang, libFuzzer)
#   deps_install_list PACKAGE...  the same for any list (scripts/build-deb.sh: debhelper, lintian)
#   deps_user NAME     create the unprivileged system user the daemons drop root to
#   deps_group NAME    create the system group spoolgate-sendmail is set-group-id to ([sendmail] group)
#   deps_sendmail BIN GROUP  make BIN set-group-id GROUP (rwxr-sr-x root:GROUP), as a package installs it
#   deps_build DIR [MESON-OPTIONS...]  meson setup DIR (once, with the options), ninja

# What ./run needs: the build (with its tests: build/ is ./test's too), the
# daemons, and swaks, which ./run's hints use.
SPOOLGATE_PACKAGES=(
	gcc libc6-dev pkg-config meson ninja-build   # build
	libevent-dev                                  # smtpd event loop (libevent_openssl: the relay's TLS)
	libfuse3-dev fuse3                            # the mount (fusermount3)
	libinih-dev                                   # configuration file
	zlib1g-dev                                    # crc32: the seal of inline records (common/envelope.c)
	libgmime-3.0-dev                              # RFC 5322 address lists (outbox)
	libunbound-dev                                # relay: asynchronous DNS (MX, A, AAAA)
	libssl-dev openssl                            # TLS (common/tls.c); ./run's self-signed certificate
	libgsasl-dev                                  # SMTP AUTH (common/sasl.c)
	libcrypt-dev                                  # yescrypt hashes of the server's users (common/userdb.c)
	libsystemd-dev                                # sd_notify for the Type=notify units (optional to the build)
	procps psmisc                                 # pkill/fuser in scripts
	swaks libauthen-sasl-perl libdigest-hmac-perl libnet-ssleay-perl  # ./run's examples; swaks --auth, --tls
	check python3                                 # build/ holds the tests too (meson -Dtests=true, ./test shares it)
)

# What ./test adds: the real peers and tools of the suites.  Not installed by
# ./run, so that a gateway does not come with DNS, GlusterFS or MooseFS
# servers it never uses.
SPOOLGATE_TEST_PACKAGES=(
	gsasl                                         # gsasl interop test (SCRAM as a client)
	python3-aiosmtpd                              # integration tests: SMTP sinks
	bsd-mailx                                     # test_sendmail.py: mail -s subject root, through spoolgate-sendmail
	msmtp nmap                                    # test_auth.py: a user's client, smtp-open-relay
	testssl.sh                                    # test_starttls.py: a TLS audit of the STARTTLS listener
	postfix                                       # smtp-source/smtp-sink; the benchmark's peer; the TLS/AUTH peer
	sasl2-bin libsasl2-modules libsasl2-modules-db # the private Postfix's SASL (sasldb, SCRAM-SHA-256)
	unbound                                       # test_dns.py: a real DNS server for the test zone
	fetchmail                                     # test_etrn.py, test_odmr.py: fetchmail --protocol ETRN / ODMR as the client
	glusterfs-server glusterfs-client             # test_shared_spool.py, bench/shared: a spool shared by two gateways
	moosefs-master moosefs-chunkserver moosefs-client # test_shared_spool.py: the same on MooseFS
	git util-linux iproute2                       # tests/setup: a fresh clone in private namespaces
	systemd mandoc groff-base man-db              # tests/package: systemd-analyze verify/security; mandoc -Tlint, groff -ww, man --warnings
	systemd-container                             # tests/package/boot.sh: systemd-nspawn boots the units
	btrfs-progs                                   # test_fs.py: a spool on a Btrfs subvolume with a qgroup limit (EDQUOT)
	e2fsprogs                                     # test_powercut.py: mkfs.ext4 and e2fsck of each power-cut state
)

# Only ./test --fuzz: libFuzzer comes with clang's runtime libraries.  The
# replay of the corpora in ./test and ./test --sanitize needs gcc alone.
SPOOLGATE_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

deps_missing() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

deps_install() {
	deps_install_list "${SPOOLGATE_PACKAGES[@]}"
}

deps_install_tests() {
	deps_install_list "${SPOOLGATE_PACKAGES[@]}" "${SPOOLGATE_TEST_PACKAGES[@]}"
}

deps_install_fuzz() {
	deps_install_list "${SPOOLGATE_FUZZ_PACKAGES[@]}"
}

deps_install_list() {
	local missing
	missing=$(deps_missing "$@" | tr '\n' ' ')
	[ -z "${missing// /}" ] && return 0
	echo "spoolgate: installing: $missing" >&2
	# Postfix must not ask questions nor configure itself as the system MTA.
	echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
}

deps_user() {
	local name=$1
	[ "$(id -u)" -eq 0 ] || return 0
	id -u "$name" >/dev/null 2>&1 && return 0
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$name"
}

deps_group() {
	local name=$1
	[ "$(id -u)" -eq 0 ] || return 0
	getent group "$name" >/dev/null 2>&1 && return 0
	groupadd --system "$name"
}

deps_sendmail() {
	local bin=$1 group=$2
	[ "$(id -u)" -eq 0 ] || return 0
	chown root:"$group" "$bin"
	chmod 2755 "$bin"
}

deps_build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >&2
}
