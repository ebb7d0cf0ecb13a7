"""harness - run the real spoolgate daemons for the integration tests.

Every test script imports this module.  An Instance is one private
gateway: a temporary directory holding its configuration, its spool, its
mountpoint and the logs of its daemons, with its own loopback port.
Instances start spoolgate-smtpd and spoolgate-fs as subprocesses, wait for
their readiness log line (event=listening / event=mounted) and are always
stopped and unmounted again, also when a test fails or the script is
killed (atexit + SIGTERM handler + unittest class cleanups).

Environment:
    SPOOLGATE_BUILD   meson build root (binaries in smtpd/ and fs/)
    SPOOLGATE_SRC     source root (defaults to ../.. from here)
    SPOOLGATE_KEEP    keep the temporary directories (default: kept only
                      when a test failed)
    SPOOLGATE_TIME_SCALE  multiplies the start and stop timeouts (./test
                      --sanitize sets it: sanitized daemons are slower)
    ASAN_OPTIONS, UBSAN_OPTIONS  passed on to the daemons, with a log_path
                      into the instance's sanitizer/ directory added

Sanitizers: each daemon writes its AddressSanitizer, LeakSanitizer and
UndefinedBehaviorSanitizer reports into <instance>/sanitizer/<daemon>.<pid>
(a directory the daemon can still write after dropping root).  Any report
found there fails the script, whatever its tests said, and is printed.

Exit status of a script run through main(): 0 all passed, 1 a failure,
77 everything skipped (meson's "skipped").

Every wait is bounded; nothing here can hang a test run.
"""

import atexit
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SKIP = 77
SRC = os.environ.get('SPOOLGATE_SRC') or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
BUILD = os.environ.get('SPOOLGATE_BUILD') or os.path.join(SRC, 'build')
SMTPD = os.path.join(BUILD, 'smtpd', 'spoolgate-smtpd')
FS = os.path.join(BUILD, 'fs', 'spoolgate-fs')
SENDMAIL = os.path.join(BUILD, 'sendmail', 'spoolgate-sendmail')
MAILQ = os.path.join(BUILD, 'sendmail', 'spoolgate-mailq')
NEWALIASES = os.path.join(BUILD, 'sendmail', 'spoolgate-newaliases')
LOGDISK = os.environ.get('SPOOLGATE_LOGDISK') or os.path.join(BUILD, 'tests', 'logdisk')
USER = 'spoolgate'
IS_ROOT = os.geteuid() == 0

TIME_SCALE = float(os.environ.get('SPOOLGATE_TIME_SCALE') or 1)
START_TIMEOUT = 15.0 * TIME_SCALE	# seconds to wait for a readiness line
STOP_TIMEOUT = 10.0 * TIME_SCALE	# seconds between SIGTERM and SIGKILL

_instances = []			# every Instance not yet cleaned up
_logs_seen = []			# (label, path) of every daemon log, for failure reports
_any_failure = False
_finished_dirs = []		# temp dirs of instances cleaned up
_sanitizer_reports = []		# (path, text) of every sanitizer report found


def log(msg):
    """A line of what the test checks, on stdout (meson keeps it)."""
    print(msg, flush=True)


# ---------------------------------------------------------------- waiting

def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value; return it.  Raises
    AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, what))
        time.sleep(interval)


class _ThreadedTCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_tcp(handler):
    """A threaded TCP server of the test's own (a sink, a hostile peer) for
    socketserver handler class `handler`, on a free loopback port
    (server.server_address[1]), serving from a daemon thread.  stop_tcp()
    ends it."""
    server = _ThreadedTCPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_tcp(server):
    server.shutdown()
    server.server_close()


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def refusing_port():
    """(socket, port): a loopback TCP port that refuses every connection
    for as long as the caller keeps the socket (bound, never listening),
    so that no later free_port() or daemon can take it.  A port from
    free_port() is only free when asked: the kernel may give it again to
    the next bind, and a "dead" next hop then reaches a live listener."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    return s, s.getsockname()[1]


# ---------------------------------------------------------------- mounts

def is_mounted(path):
    """True if path is a mount point (also a dead FUSE mount, which
    os.path.ismount() cannot stat)."""
    path = os.path.realpath(path)
    try:
        with open('/proc/self/mountinfo') as f:
            for line in f:
                fields = line.split()
                mp = fields[4].replace('\\040', ' ')
                if mp == path:
                    return True
    except OSError:
        pass
    return False


def rlimit_preexec(**limits):
    """A preexec_fn that sets RLIMIT_<NAME> (soft and hard) to each
    name=value given that is not None; None when there is none."""
    import resource
    todo = [(getattr(resource, 'RLIMIT_' + name.upper()), value)
            for name, value in limits.items() if value is not None]
    if not todo:
        return None

    def preexec():
        for res, value in todo:
            resource.setrlimit(res, (value, value))
    return preexec


def unmount(path):
    """Unmount path: fusermount3 -u, then -uz, then umount -l.  Bounded."""
    for cmd in (['fusermount3', '-u', path], ['fusermount3', '-u', '-z', path],
                ['umount', path], ['umount', '-l', path]):
        if not is_mounted(path):
            return True
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return not is_mounted(path)


def fuse_available():
    """None if FUSE can be used here, else the reason to skip."""
    if not os.path.exists('/dev/fuse'):
        return '/dev/fuse is missing'
    if shutil.which('fusermount3') is None:
        return 'fusermount3 is not installed'
    return None


# ---------------------------------------------------------------- the user

def ensure_user():
    """As root the daemons drop to USER: create it if missing."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    subprocess.run(['useradd', '--system', '--no-create-home',
                    '--shell', '/usr/sbin/nologin', USER],
                   check=True, timeout=30)
    return pwd.getpwnam(USER)


def add_user(name):
    """A login user of the test's own (no home, /bin/sh), made afresh: a
    leftover of a killed run is removed first.  Remove it with remove_user()
    (addClassCleanup), whatever happens."""
    remove_user(name)
    subprocess.run(['useradd', '--no-create-home', '--shell', '/bin/sh', name], check=True, timeout=30)
    return pwd.getpwnam(name)


def remove_user(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(['userdel', name], timeout=30)


def run_as(user, cmd, data=b'', env=None, timeout=30):
    """Run a shell command as user (su, as cron does), stdin = data."""
    prefix = ' '.join('%s=%s' % (k, v) for k, v in (env or {}).items())
    return subprocess.run(['su', '-s', '/bin/sh', user, '-c', (prefix + ' ' + cmd).strip()],
                          input=data, capture_output=True, timeout=timeout)


def ensure_group(name):
    """A system group (spoolgate-sendmail's [sendmail] group), made if missing."""
    try:
        grp.getgrnam(name)
    except KeyError:
        subprocess.run(['groupadd', '--system', name], check=True, timeout=30)


def install_sendmail(gw, group, setgid=True):
    """A copy of spoolgate-sendmail in the instance's directory, root:group
    rwxr-sr-x as a package installs it (or without the set-group-id bit)."""
    path = os.path.join(gw.dir, 'sendmail' if setgid else 'sendmail-plain')
    shutil.copy(SENDMAIL, path)
    os.chown(path, 0, grp.getgrnam(group).gr_gid)
    os.chmod(path, 0o2755 if setgid else 0o755)
    return path


# ---------------------------------------------------------------- config

# Which section each key lives in (common/cfg.h).
_SECTION = {
    'dir': 'spool', 'local_domains': 'spool', 'mailboxes': 'spool',
    'user': 'spool', 'hostname': 'spool',
    'listen': 'smtpd', 'banner': 'smtpd', 'max_sessions': 'smtpd',
    'max_line': 'smtpd', 'max_recipients': 'smtpd', 'max_message_size': 'smtpd',
    'idle_timeout': 'smtpd', 'max_errors': 'smtpd', 'max_hops': 'smtpd',
    'max_sessions_per_client': 'smtpd', 'command_deadline': 'smtpd',
    'session_deadline': 'smtpd', 'vrfy': 'smtpd', 'forwarding': 'smtpd',
    'checkpoint_interval': 'smtpd', 'checkpoint_lifetime': 'smtpd',
    'relay_networks': 'smtpd', 'auth_users': 'smtpd', 'auth': 'smtpd',
    'auth_min_mechanism': 'smtpd', 'restrict_sender': 'smtpd', 'auth_failure_delay': 'smtpd',
    'etrn': 'smtpd',
    'smarthost': 'relay', 'retry_min': 'relay', 'retry_max': 'relay',
    'max_queue_lifetime': 'relay', 'max_deliveries': 'relay',
    'scan_interval': 'relay', 'connect_timeout': 'relay',
    'command_timeout': 'relay', 'data_done_timeout': 'relay', 'keep_sent': 'relay',
    'bounce_limit_per_hour': 'relay', 'delay_warning_time': 'relay', 'dsn_full_max': 'relay',
    'tls': 'relay', 'tls_ca_file': 'relay', 'credentials': 'relay',
    'auth_plaintext': 'relay',
    'connection_idle_timeout': 'relay', 'connection_reuse_count_limit': 'relay',
    'connection_reuse_time_limit': 'relay', 'max_per_destination': 'relay',
    'resolver': 'relay', 'dns_timeout': 'relay',
    'routes': 'routes',		# a dict: domain -> target, one line each
    'forwards': 'forwards',	# a dict: address -> new address, one line each
    'odmr': 'odmr',		# a dict: AUTH user -> its domains (ATRN), one line each
    # a dict: name -> {key: value}, one [listener NAME] section each
    # (listen, tls, tls_cert_file, tls_key_file, auth, relay_networks...)
    'listeners': 'listeners',
    'group': 'sendmail', 'trusted_users': 'sendmail', 'sender_domain': 'sendmail',
    'mountpoint': 'fs', 'allow_other': 'fs', 'mailbox_owners': 'fs', 'wait_timeout': 'fs', 'passthrough': 'fs',
    'level': 'log',
    # [aliases] file: written as aliases.file (a dotted key), see write_config
}
_ORDER = ['spool', 'smtpd', 'listeners', 'relay', 'routes', 'forwards', 'odmr', 'sendmail', 'aliases', 'fs', 'log']


def _fmt(value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, (list, tuple)):
        return ' '.join(str(v) for v in value)
    return str(value)


class DaemonError(AssertionError):
    pass


class Instance:
    """One private gateway in a temporary directory.

    cfg overrides are flat keys of common/cfg.h (max_line=512, ...);
    a value of None removes the key (the daemon's default applies).
    """

    def __init__(self, name, **cfg):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix='spoolgate-%s-' % name)
        # The daemons drop root: they must be able to reach the spool.
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, 'spool')
        self.mnt = os.path.join(self.dir, 'mnt')
        self.conf = os.path.join(self.dir, 'spoolgate.conf')
        self.port = free_port()
        self.procs = {}
        self.logs = {'smtpd': os.path.join(self.dir, 'smtpd.log'),
                     'fs': os.path.join(self.dir, 'fs.log')}
        self.extra_mounts = []
        self.logdisk = None
        os.mkdir(self.spool, 0o755)
        self.sanitizer_dir = os.path.join(self.dir, 'sanitizer')
        os.mkdir(self.sanitizer_dir)
        os.chmod(self.sanitizer_dir, 0o1777)	# written after the drop of root
        self.cfg = {
            'dir': self.spool,
            'local_domains': 'localhost',
            'mailboxes': '*',
            'listen': '127.0.0.1:%d' % self.port,
            'banner': 'spoolgate ESMTP',
            'max_sessions': 100,
            # Every test client is 127.0.0.1: only the tests of the limit lower it.
            'max_sessions_per_client': 100,
            'max_line': 2048,
            'max_recipients': 100,
            'max_message_size': 10485760,
            'idle_timeout': 300,
            'max_errors': 20,
            'max_hops': 50,
            'relay_networks': '127.0.0.0/8 ::1/128',
            # Nothing listens there unless a test says otherwise.
            'smarthost': '127.0.0.1:%d' % free_port(),
            'retry_min': 3600,
            'retry_max': 3600,
            'max_queue_lifetime': 432000,
            'max_deliveries': 4,
            'scan_interval': 300,
            'connect_timeout': 5,
            'command_timeout': 30,
            'keep_sent': True,
            'mountpoint': self.mnt,
            'allow_other': False,
            'level': 'debug',
        }
        if IS_ROOT:
            ensure_user()
            self.cfg['user'] = USER
        self.cfg.update(cfg)
        self.chown_spool()
        self.write_config()
        _instances.append(self)

    # ------------------------------------------------------------ config

    def write_config(self):
        sections = {s: [] for s in _ORDER}
        for key, value in self.cfg.items():
            if value is None:
                continue
            if key in ('routes', 'forwards', 'odmr'):
                sections[key].extend('%s = %s' % kv for kv in value.items())
                continue
            if key == 'listeners':
                for name, keys in value.items():
                    sections['listeners'].append('\n[listener %s]' % name)
                    sections['listeners'].extend('%s = %s' % (k, _fmt(v)) for k, v in keys.items()
                                                 if v is not None)
                continue
            if '.' in key:		# "smtpd.auth_plaintext": a key whose name is in two sections
                section, name = key.split('.', 1)
                sections[section].append('%s = %s' % (name, _fmt(value)))
                continue
            sections[_SECTION[key]].append('%s = %s' % (key, _fmt(value)))
        with open(self.conf, 'w') as f:
            f.write('# written by tests/integration/harness.py for %s\n' % self.name)
            for s in _ORDER:
                if sections[s] and s == 'listeners':
                    f.write('\n'.join(sections[s]) + '\n')
                elif sections[s]:
                    f.write('\n[%s]\n' % s)
                    f.write('\n'.join(sections[s]) + '\n')

    def chown_spool(self):
        if IS_ROOT and self.cfg.get('user'):
            pw = pwd.getpwnam(self.cfg['user'])
            os.chown(self.spool, pw.pw_uid, pw.pw_gid)

    def mount_tmpfs_spool(self, size='1m'):
        """Put the spool on a tiny tmpfs (root only).  Returns None or the
        reason it could not be done."""
        if not IS_ROOT:
            return 'needs root to mount a tmpfs'
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0755' % size,
                            'tmpfs', self.spool], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            return 'mount -t tmpfs failed: %s' % r.stderr.strip()
        self.extra_mounts.append(self.spool)
        self.chown_spool()
        return None

    def mount_quota_spool(self, limit):
        """Put the spool on a btrfs subvolume whose qgroup limit is limit
        (btrfs's size syntax: '600K'), in a 256 MB image in the instance's
        directory mounted with -o loop (root only; Debian's btrfs-progs, as
        an operator would).  statvfs(2) there shows the whole filesystem's
        free space, not the limit.  Returns None or the reason it could
        not be done."""
        if not IS_ROOT:
            return 'needs root to mount an image'
        if shutil.which('mkfs.btrfs') is None:
            return 'mkfs.btrfs missing (Debian package btrfs-progs: scripts/deps.sh)'
        img = os.path.join(self.dir, 'spool-btrfs.img')
        top = os.path.join(self.dir, 'btrfs-top')
        os.makedirs(top, exist_ok=True)
        with open(img, 'wb') as f:
            f.truncate(256 << 20)
        r = subprocess.run(['mkfs.btrfs', '-q', '-f', img], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            return 'mkfs.btrfs failed: %s' % r.stderr.strip()
        r = subprocess.run(['mount', '-o', 'loop', img, top], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            return 'mount of a btrfs image failed: %s' % r.stderr.strip()
        try:
            for cmd in (['btrfs', 'quota', 'enable', top],
                        ['btrfs', 'subvolume', 'create', os.path.join(top, 'spool')],
                        ['btrfs', 'qgroup', 'limit', limit, os.path.join(top, 'spool')]):
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    return '%s failed: %s' % (' '.join(cmd[:3]), r.stderr.strip())
        finally:
            unmount(top)
        r = subprocess.run(['mount', '-o', 'loop,subvol=spool', img, self.spool],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return 'mount -o subvol=spool failed: %s' % r.stderr.strip()
        self.extra_mounts.append(self.spool)
        self.chown_spool()
        return None

    def mount_logged_spool(self, journal=True, size_mb=160):
        """Put the spool on a new ext4 (mkfs.ext4's defaults: a journal;
        journal=False: -O ^has_journal) whose disk records every write and
        cache flush: a loop device over the one file of tests/crash/logdisk
        (SPOOLGATE_LOGDISK).  The image as mkfs.ext4 left it is copied to
        self.disk_first, the log is self.disk_log (root only).  Returns
        None or the reason it could not be done."""
        if not IS_ROOT:
            return 'needs root to mount an image'
        if not os.access(LOGDISK, os.X_OK):
            return 'tests/crash/logdisk not built (%s)' % LOGDISK
        self.disk_dir = os.path.join(self.dir, 'logdisk')
        os.mkdir(self.disk_dir)
        image = os.path.join(self.disk_dir, 'image')
        self.disk_first = os.path.join(self.disk_dir, 'first-image')
        self.disk_log = os.path.join(self.disk_dir, 'log')
        disk_mnt = os.path.join(self.disk_dir, 'mnt')
        os.mkdir(disk_mnt)
        with open(image, 'wb') as f:
            f.truncate(size_mb << 20)
        r = subprocess.run(['mkfs.ext4', '-q', '-F'] + ([] if journal else ['-O', '^has_journal'])
                           + [image], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return 'mkfs.ext4 failed: %s' % r.stderr.strip()
        shutil.copyfile(image, self.disk_first)
        errors = os.path.join(self.disk_dir, 'logdisk.err')
        with open(errors, 'wb') as err:
            self.logdisk = subprocess.Popen([LOGDISK, image, self.disk_log, disk_mnt],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=err)
        wait_until(lambda: is_mounted(disk_mnt) or self.logdisk.poll() is not None, 10,
                   'logdisk mounted')
        if not is_mounted(disk_mnt):
            with open(errors, errors='replace') as err:
                return 'logdisk failed: %s' % err.read().strip()
        self.extra_mounts.append(disk_mnt)
        r = subprocess.run(['mount', '-o', 'loop', os.path.join(disk_mnt, 'disk'), self.spool],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return 'mount of the logged disk failed: %s' % r.stderr.strip()
        self.extra_mounts.append(self.spool)
        os.chmod(self.spool, 0o755)
        self.chown_spool()
        return None

    @property
    def smtp_addr(self):
        return ('127.0.0.1', self.port)

    def listener_addr(self, name):
        """(host, port) where listener name is bound, from smtpd's
        event=listener line of its last start."""
        found = None
        for m in re.finditer(r'event=listener listener=(\S+) addr=(\S+)', self.read_log('smtpd')):
            if m.group(1) == name:
                found = m.group(2)
        if found is None:
            raise DaemonError('no event=listener line for %s' % name)
        host, port = found.rsplit(':', 1)
        return (host.strip('[]'), int(port))

    # ------------------------------------------------------------ daemons

    def _log_size(self, which):
        try:
            return os.path.getsize(self.logs[which])
        except OSError:
            return 0

    def read_log(self, which, start=0):
        try:
            with open(self.logs[which], 'rb') as f:
                f.seek(start)
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def _daemon_env(self, which, extra):
        """The environment of a daemon: ours, extra, and sanitizer reports
        sent to files that sanitizer_reports() reads."""
        env = dict(os.environ, **(extra or {}))
        logs = os.path.join(self.sanitizer_dir, which)
        asan = [env.get('ASAN_OPTIONS', ''), 'log_path=' + logs]
        if 'LD_PRELOAD' in env:
            # The shim comes first in the link order; the runtime does not mind.
            asan.append('verify_asan_link_order=0')
        env['ASAN_OPTIONS'] = ':'.join(o for o in asan if o)
        env['UBSAN_OPTIONS'] = ':'.join(o for o in (env.get('UBSAN_OPTIONS', ''),
                                                    'log_path=' + logs) if o)
        return env

    def sanitizer_reports(self):
        """[(path, text)] of the reports the daemons wrote so far."""
        found = []
        if not os.path.isdir(self.sanitizer_dir):	# removed by a test
            return found
        for name in sorted(os.listdir(self.sanitizer_dir)):
            path = os.path.join(self.sanitizer_dir, name)
            with open(path, 'rb') as f:
                text = f.read().decode('utf-8', 'replace')
            if text.strip():
                found.append((path, text))
        return found

    def _start(self, which, argv, ready, env=None, preexec=None):
        if which in self.procs and self.procs[which].poll() is None:
            raise DaemonError('%s already running' % which)
        start = self._log_size(which)
        logf = open(self.logs[which], 'ab')
        _logs_seen.append(('%s/%s' % (self.name, which), self.logs[which]))
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, cwd=self.dir,
                                    env=self._daemon_env(which, env),
                                    preexec_fn=preexec)
        finally:
            logf.close()
        self.procs[which] = proc
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = self.read_log(which, start)
            if ready in text:
                return proc
            if proc.poll() is not None:
                raise DaemonError('%s exited with status %s before "%s"; log:\n%s'
                                  % (which, proc.returncode, ready, text))
            if time.monotonic() >= deadline:
                text = self.read_log(which, start)
                self.stop(which)
                raise DaemonError('%s did not log "%s" within %.0fs; log:\n%s'
                                  % (which, ready, START_TIMEOUT, text))
            time.sleep(0.05)

    def start_smtpd(self, env=None, nofile=None, fsize=None):
        """env: extra environment variables for the daemon (LD_PRELOAD...);
        nofile: its RLIMIT_NOFILE (soft and hard), to run it out of descriptors;
        fsize: its RLIMIT_FSIZE in bytes (ulimit -f)."""
        self.write_config()
        return self._start('smtpd', [SMTPD, '-c', self.conf], 'event=listening', env,
                           rlimit_preexec(nofile=nofile, fsize=fsize))

    def start_fs(self, env=None, fsize=None):
        """env: extra environment variables for the daemon (LD_PRELOAD...);
        fsize: its RLIMIT_FSIZE in bytes (ulimit -f)."""
        if is_mounted(self.mnt):
            # A dead mount left by a killed fs daemon: what an operator does.
            unmount(self.mnt)
        self.write_config()
        return self._start('fs', [FS, '-c', self.conf, '-f'], 'event=mounted', env,
                           rlimit_preexec(fsize=fsize))

    def kill(self, which, sig=signal.SIGKILL):
        """Send sig and wait (bounded) for the process to exit."""
        proc = self.procs.get(which)
        if proc is None or proc.poll() is not None:
            return None
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
            raise DaemonError('%s did not exit within %.0fs of signal %d'
                              % (which, STOP_TIMEOUT, sig))

    def stop(self, which):
        """SIGTERM, bounded wait, SIGKILL.  Returns the exit status (None if
        it was not running).  For fs, the mount is always gone afterwards."""
        proc = self.procs.get(which)
        status = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT)
            status = proc.returncode
        if which == 'fs' and is_mounted(self.mnt):
            unmount(self.mnt)
        return status

    def running(self, which):
        proc = self.procs.get(which)
        return proc is not None and proc.poll() is None

    def cleanup(self):
        """Stop everything, unmount everything, remove the directory."""
        for which in ('fs', 'smtpd'):
            try:
                self.stop(which)
            except Exception as e:		# keep cleaning
                log('cleanup: stopping %s: %s' % (which, e))
        if is_mounted(self.mnt):
            unmount(self.mnt)
        for m in reversed(self.extra_mounts):
            unmount(m)
        self.extra_mounts = []
        if self.logdisk is not None:	# its mount is gone: it exits
            try:
                self.logdisk.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.logdisk.kill()
                self.logdisk.wait()
            self.logdisk = None
        _sanitizer_reports.extend(self.sanitizer_reports())
        if self in _instances:
            _instances.remove(self)
        # Removed by main() at the end if every test passed: a failure
        # report needs the logs.
        _finished_dirs.append(self.dir)

    # ------------------------------------------------------------ spool views

    def path(self, *parts):
        return os.path.join(self.spool, *parts)

    def listdir(self, *parts):
        try:
            return sorted(os.listdir(self.path(*parts)))
        except FileNotFoundError:
            return []

    def mailbox_new(self, box):
        """Names in mail/<box>/new."""
        return self.listdir('mail', box, 'new')

    def mailbox_files(self, box):
        """Names in mail/<box>/new and cur."""
        return self.listdir('mail', box, 'new') + self.listdir('mail', box, 'cur')

    def read_mail(self, box, name):
        with open(self.path('mail', box, 'new', name), 'rb') as f:
            return f.read()

    def find_mail(self, box, msgid):
        """The file name in mail/<box>/new of message id (names are <id>.<host>)."""
        for name in self.mailbox_new(box):
            if name.startswith(msgid + '.'):
                return name
        return None

    def all_files(self, *parts):
        """Every regular file under spool/<parts> (recursively), as relative paths."""
        top = self.path(*parts)
        out = []
        for root, dirs, files in os.walk(top):
            for f in files:
                out.append(os.path.relpath(os.path.join(root, f), self.spool))
        return sorted(out)

    def parked_claims(self):
        """Names of the claims parked in tmp/ (<id>@<host>,<pid>.old): a
        record the relay is finishing, between the claim leaving active/
        and the new record's publish (common/queue.c)."""
        return [n for n in self.listdir('tmp') if '@' in n and n.endswith('.old')]

    def record_ids(self):
        """Ids of every envelope record: queue/, active/, sent/, failed/,
        and claims parked in tmp/.

        A live relay moves records (queue/ -> active/ -> tmp/ -> queue/)
        while the directories are listed one after the other, in the order
        a record moves through them, so one pass can miss a record; passes
        are repeated until one finds nothing new."""
        ids = set()
        for attempt in range(20):
            found = set()
            for d in ('queue', 'active', 'tmp', 'sent', 'failed', 'queue'):
                names = self.parked_claims() if d == 'tmp' else self.listdir(d)
                found.update(n.split('@', 1)[0] for n in names)
            if attempt > 0 and found <= ids:
                break
            ids |= found
        return ids

    def find_record(self, msgid):
        """(where, text) of the record of msgid, or (None, None).  The text
        is the record's alone: an inline record's message (after its empty
        line, common/envelope.h) is left out.

        A live relay moves the record (queue/ -> active/ -> tmp/ -> queue/)
        while we look, so a record missed in one pass is looked for again."""
        for _ in range(20):
            where, text = self._find_record_once(msgid)
            if where is not None:
                return where, text
            time.sleep(0.01)
        return None, None

    def _find_record_once(self, msgid):
        for d in ('queue', 'sent', 'failed'):
            p = self.path(d, msgid)
            try:
                with open(p, 'r', errors='replace') as f:
                    return d, record_text(f.read())
            except FileNotFoundError:
                pass
        # a claim, or a claim parked while the relay finishes it: 'active' both
        for d, names in (('active', self.listdir('active')), ('tmp', self.parked_claims())):
            for n in names:
                if n.split('@', 1)[0] == msgid:
                    try:
                        with open(self.path(d, n), 'r', errors='replace') as f:
                            return 'active', record_text(f.read())
                    except FileNotFoundError:
                        pass
        return None, None


    def message_of(self, msgid):
        """The bytes of msgid's message as the spool holds them (after
        data-offset): in data/<id>, or in the record's own file when it is
        inline (a small outbox/ drop before the relay's first rewrite)."""
        for _ in range(20):	# a live relay moves the record while we read it: look again
            where, _ = self.find_record(msgid)
            if where is None:
                raise FileNotFoundError('no record of %s' % msgid)
            names = [msgid] if where != 'active' else \
                [n for n in self.listdir('active') if n.split('@', 1)[0] == msgid]
            try:
                return stored_message(self.path(where, names[0]), self.path('data', msgid))
            except (FileNotFoundError, IndexError):
                time.sleep(0.01)
        raise FileNotFoundError('the record of %s kept moving' % msgid)


# ---------------------------------------------------------------- records

def stored_message(record_path, data_path):
    """The message the record file at record_path names, after its
    data-offset: in data_path, or in the record's own file after its empty
    line when it is inline (common/envelope.h)."""
    with open(record_path, 'rb') as f:
        head, blank, rest = f.read().partition(b'\n\n')
    rec = parse_record(head.decode(errors='replace'))
    offset = int(rec.get('data-offset') or 0)
    if blank and rec.get('data') == 'inline':
        return rest[offset:]
    with open(data_path, 'rb') as f:
        return f.read()[offset:]


def record_text(raw):
    """The record's text of a record file's content: an inline record
    (common/envelope.h) ends at its empty line, where its message starts."""
    return raw.split('\n\n', 1)[0] + '\n' if '\n\n' in raw else raw


def parse_record(text):
    """Parse an envelope record (common/envelope.h) into a dict:
    keys as strings, 'rcpt' a list of (state, addr, reply), 'attempt' the
    list of the attempt: lines (the history, oldest first)."""
    rec = {'rcpt': [], 'attempt': []}
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition(': ')
        if not sep:
            key, value = line.rstrip(':'), ''
        if key == 'rcpt':
            m = re.match(r'(\w+) <([^>]*)>\s?(.*)$', value)
            if m:
                rec['rcpt'].append((m.group(1), m.group(2), m.group(3)))
            else:
                rec['rcpt'].append(('?', value, ''))
        elif key == 'attempt':
            rec['attempt'].append(value)
        else:
            rec[key] = value
    return rec


# ---------------------------------------------------------------- stored messages

def split_stored(data):
    """Split a stored local message into (return_path_line, received_header,
    content) where content is exactly what the client sent (after
    unstuffing and CRLF->LF).  Raises AssertionError if the layout is wrong."""
    if not data.startswith(b'Return-Path: '):
        raise AssertionError('stored message does not start with Return-Path: %r' % data[:80])
    nl = data.index(b'\n')
    return_path = data[:nl]
    rest = data[nl + 1:]
    if not rest.startswith(b'Received: '):
        raise AssertionError('no Received: header after Return-Path: %r' % rest[:80])
    # The Received header: first line plus folded continuation lines.
    end = rest.index(b'\n') + 1
    while end < len(rest) and rest[end:end + 1] in (b' ', b'\t'):
        end = rest.index(b'\n', end) + 1
    return return_path, rest[:end], rest[end:]


# ---------------------------------------------------------------- raw SMTP

class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines		# texts after "NNN-" / "NNN "

    @property
    def text(self):
        return '\n'.join(self.lines)

    @property
    def esc(self):
        """The enhanced status code of the first line, or None."""
        m = re.match(r'([245]\.\d{1,3}\.\d{1,3})(\s|$)', self.lines[0] if self.lines else '')
        return m.group(1) if m else None

    def __repr__(self):
        return '<Reply %d %r>' % (self.code, self.lines)


class RawSMTP:
    """A byte-exact SMTP client over a plain socket, for what smtplib won't
    do (pipelining bodies, bare LF, overlong lines).  Every read is bounded
    by a timeout."""

    def __init__(self, addr, timeout=10.0, greeting=True, source=None):
        """source: the local address to connect from (e.g. '127.0.0.2')."""
        self.sock = socket.create_connection(addr, timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.buf = b''
        self.greeting = self.reply() if greeting else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError('no reply within %.1fs (have %r)' % (timeout, self.buf[:200]))
        except ConnectionResetError:
            chunk = b''
        if not chunk:
            raise EOFError('connection closed by server (have %r)' % self.buf[:200])
        self.buf += chunk

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('no complete reply line within %.1fs (have %r)'
                                     % (timeout, self.buf[:200]))
            self._fill(left)
        line, _, self.buf = self.buf.partition(b'\n')
        if not line.endswith(b'\r'):
            raise AssertionError('reply line without CRLF: %r' % line)
        return line[:-1].decode('utf-8', 'replace')

    def reply(self, timeout=None):
        """Read one complete (multi-line) reply."""
        timeout = self.timeout if timeout is None else timeout
        lines = []
        code = None
        while True:
            line = self._line(timeout)
            m = re.match(r'(\d{3})([ -])(.*)$', line) or re.match(r'(\d{3})()()$', line)
            if not m:
                raise AssertionError('malformed reply line %r' % line)
            c = int(m.group(1))
            if code is not None and c != code:
                raise AssertionError('reply code changed inside a multi-line reply: %r' % line)
            code = c
            lines.append(m.group(3))
            if m.group(2) != '-':
                return Reply(code, lines)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b'\r\n')
        return self.reply(timeout)

    def ehlo(self, name='client.example'):
        r = self.cmd('EHLO ' + name)
        assert r.code == 250, r
        return r

    def nothing_more(self, wait=1.0):
        """True if the server sends nothing (and does not close) within wait."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        except ConnectionResetError:
            return False
        self.buf += chunk
        return False

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (data
        that arrives first is kept in buf)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk


def assert_reply(tc, r, code, esc=None, what=''):
    """unittest assertion on a Reply: basic code and (optionally) enhanced code."""
    tc.assertEqual(r.code, code, '%s: expected %d%s, got %r' % (what, code,
                   ' ' + esc if esc else '', r))
    if esc is not None:
        tc.assertEqual(r.esc, esc, '%s: expected enhanced code %s, got %r' % (what, esc, r))


def batch_stats(tc, text, event, count_key):
    """The (count, batches, max_batch) of a group-commit statistics line
    ("event=EVENT COUNT_KEY=n batches=n max_batch=n") in a daemon's log;
    fails tc if there is none."""
    m = re.search(r'event=%s %s=(\d+) batches=(\d+) max_batch=(\d+)' % (event, count_key), text)
    tc.assertIsNotNone(m, 'no %s line in the log' % event)
    return tuple(int(x) for x in m.groups())


def queued_id(reply_text):
    """The id from '250 2.0.0 Ok: queued as <id>'."""
    if isinstance(reply_text, bytes):
        reply_text = reply_text.decode('utf-8', 'replace')
    m = re.search(r'queued as (\S+)', reply_text)
    if not m:
        raise AssertionError('no "queued as <id>" in %r' % reply_text)
    return m.group(1)


# ---------------------------------------------------------------- running

def _cleanup_all():
    for inst in list(_instances):
        try:
            inst.cleanup()
        except Exception as e:
            log('cleanup of %s failed: %s' % (inst.dir, e))


def _on_signal(signum, frame):
    # Turn SIGTERM (meson's timeout) into a normal exit: finally blocks,
    # class cleanups and atexit still run, so nothing stays mounted.
    raise SystemExit(1)


def _print_logs():
    seen = set()
    for label, path in _logs_seen:
        if path in seen:
            continue
        seen.add(path)
        try:
            with open(path, 'rb') as f:
                lines = f.read().decode('utf-8', 'replace').splitlines()
        except OSError:
            continue
        log('---- last lines of %s (%s) ----' % (label, path))
        for line in lines[-40:]:
            log('  ' + line)


def require_binaries(*which):
    missing = [p for p in which if not os.access(p, os.X_OK)]
    if missing:
        log('missing daemon binaries (build first; SPOOLGATE_BUILD=%s): %s'
            % (BUILD, ' '.join(missing)))
        sys.exit(1)


def main(binaries=(SMTPD,)):
    """Run the unittest cases of __main__ and exit 0 / 1 / 77."""
    global _any_failure
    signal.signal(signal.SIGTERM, _on_signal)
    atexit.register(_cleanup_all)
    require_binaries(*binaries)
    log('spoolgate integration: build=%s src=%s root=%s' % (BUILD, SRC, IS_ROOT))
    # Test names on the command line (Class or Class.test_x) run only those.
    if len(sys.argv) > 1:
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], sys.modules['__main__'])
    else:
        suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules['__main__'])
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    if not result.wasSuccessful():
        _any_failure = True
        _print_logs()
    _cleanup_all()
    for path, text in _sanitizer_reports:
        _any_failure = True
        log('---- sanitizer report %s ----' % path)
        for line in text.splitlines():
            log('  ' + line)
    if _sanitizer_reports:
        log('FAILED: %d sanitizer report(s) from the daemons (above)' % len(_sanitizer_reports))
    for d in _finished_dirs:
        if _any_failure or os.environ.get('SPOOLGATE_KEEP'):
            log('kept %s' % d)
        elif not any(is_mounted(os.path.join(d, m)) for m in ('mnt', 'spool')):
            shutil.rmtree(d, ignore_errors=True)
    if not result.wasSuccessful() or _sanitizer_reports:
        sys.exit(1)
    if result.testsRun == 0 or len(result.skipped) == result.testsRun:
        sys.exit(SKIP)
    sys.exit(0)
